"""Keys, per-key limits and budgets, and a burst of 10x capacity, through a gateway attached to the real engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from server.auth import hash_key
from tests.conftest import ENGINE_KEY
from tests.gateway_process import Gateway, attached_gateway

pytestmark = pytest.mark.engine

KEYS = {
    "alice": "sk-ml-alice-0123456789",
    "budget": "sk-ml-budget-0123456789",
    "rpm": "sk-ml-rpm-0123456789",
    "off": "sk-ml-off-0123456789",
}
SPECS = [
    {"label": "alice", "sha256": hash_key(KEYS["alice"])},
    {"label": "budget", "sha256": hash_key(KEYS["budget"]), "limits": {"token_budget": 20}},
    {"label": "rpm", "sha256": hash_key(KEYS["rpm"]), "limits": {"requests_per_minute": 2}},
    {"label": "off", "sha256": hash_key(KEYS["off"]), "disabled": True},
]
CAPACITY = 4  # 2 in flight + 2 waiting
QUEUE_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def guarded(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        "MISTRAL_LOCAL_API_KEYS": json.dumps(SPECS),
        "MISTRAL_LOCAL_MAX_IN_FLIGHT": "2",
        "MISTRAL_LOCAL_MAX_WAITING": "2",
        "MISTRAL_LOCAL_QUEUE_TIMEOUT_S": str(QUEUE_TIMEOUT_S),
        "MISTRAL_LOCAL_DB_PATH": str(tmp_path_factory.mktemp("records") / "g.sqlite3"),
    }
    with attached_gateway("gateway-guarded", gateway, ENGINE_KEY, env, headers=auth("alice")) as gw:
        yield gw


def auth(label: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[label]}"}


def chat(gw: Gateway, label: str | None, max_tokens: int = 4) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/api/v1/chat/completions",
        headers=auth(label) if label else {},
        timeout=120,
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens},
    )


def test_keys_required_and_models_public(guarded: Gateway) -> None:
    assert chat(guarded, None).status_code == 401
    assert httpx.get(f"{guarded.url}/api/v1/models").status_code == 200
    assert chat(guarded, "alice").status_code == 200
    off = chat(guarded, "off")
    assert off.status_code == 403
    assert off.json() == {"error": {"code": 403, "message": "API key 'off' is disabled"}}


def test_token_budget_runs_out_with_a_402(guarded: Gateway) -> None:
    statuses = [chat(guarded, "budget", max_tokens=8).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]  # about 13 tokens each: the second starts below the budget of 20
    assert statuses[2] == 402
    key = httpx.get(f"{guarded.url}/api/v1/key", headers=auth("budget")).json()["data"]
    assert key["label"] == "budget" and key["limits"]["token_budget"] == 20 and key["usage_tokens"] >= 20


def test_requests_per_minute(guarded: Gateway) -> None:
    assert [chat(guarded, "rpm").status_code for _ in range(2)] == [200, 200]
    limited = chat(guarded, "rpm")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["code"] == 429


def test_burst_of_ten_times_capacity(guarded: Gateway) -> None:
    def timed() -> tuple[int, float, httpx.Response]:
        started = time.monotonic()
        r = chat(guarded, "alice", max_tokens=16)
        return r.status_code, time.monotonic() - started, r

    with ThreadPoolExecutor(10 * CAPACITY) as pool:
        results = list(pool.map(lambda _: timed(), range(10 * CAPACITY)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert len(ok) + len(refused) == len(results)  # nothing else: no 5xx, no hang
    assert len(ok) >= CAPACITY and refused
    assert all(r[2].json()["usage"]["completion_tokens"] == 16 for r in ok)
    # Refusals are quick: at once when the queue is full, at the latest when a waiter's queue time is up.
    assert max(seconds for _, seconds, _ in refused) < QUEUE_TIMEOUT_S + 2
    assert all(r[2].headers["retry-after"].isdigit() for r in refused)
