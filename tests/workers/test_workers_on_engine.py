"""`serve --workers 2` in front of the real engine: connections spread over the workers, and whichever worker a
request reaches, the limits, budgets, records and metrics are one set; a worker that dies gives its admissions back
and is replaced; SIGTERM drains every worker; a worker whose control process dies exits."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from server.access.auth import hash_key
from tests.support.engine_requests import STREAM_TOKENS, stream_story, wait_for_drain
from tests.support.gateway_process import (
    ENGINE_KEY,
    Gateway,
    attached_gateway,
    private_dirs,
    start_gateway,
    wait_gone,
)
from tests.support.helpers import bearer, metric, wait_for

pytestmark = pytest.mark.engine

KEYS = {label: f"sk-ml-{label}-0123456789" for label in ("open", "pair", "rpm", "budget", "ops")}
LIMITS = {"pair": {"concurrent_requests": 2}, "rpm": {"requests_per_minute": 3}, "budget": {"token_budget": 20}}
SPECS = [
    {"label": k, "sha256": hash_key(v), "limits": LIMITS.get(k, {}), "management": k == "ops"} for k, v in KEYS.items()
]
MAX_IN_FLIGHT = 4
LONG = 3000  # tokens: a held stream outlives the test that holds it, unless this process is held up
HOLD_ATTEMPTS = 5


def workers_env(db: Path) -> dict[str, str]:
    return {
        "MISTRAL_LOCAL_WORKERS": "2",
        "MISTRAL_LOCAL_API_KEYS": json.dumps(SPECS),
        "MISTRAL_LOCAL_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "MISTRAL_LOCAL_MAX_WAITING": "0",
        "MISTRAL_LOCAL_DB_PATH": str(db),
        "MISTRAL_LOCAL_DRAIN_TIMEOUT_S": "180",
    }


@pytest.fixture(scope="module")
def workers(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = workers_env(tmp_path_factory.mktemp("records") / "w.sqlite3")
    with attached_gateway("gateway-workers", gateway, ENGINE_KEY, env, headers=auth("open")) as gw:
        yield gw


def auth(label: str) -> dict[str, str]:
    return bearer(KEYS[label])


def worker_pids(gw: Gateway) -> set[int]:
    children = psutil.Process(gw.proc.pid).children()
    return {p.pid for p in children if "server.workers.worker" in " ".join(p.cmdline())}


def connections_by_worker(gw: Gateway) -> dict[int, int]:
    """Established client connections on the gateway's port, per worker process."""
    port = int(gw.url.rsplit(":", 1)[1])
    return {
        pid: sum(
            c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in psutil.Process(pid).net_connections()
        )
        for pid in worker_pids(gw)
    }


def chat(gw: Gateway, label: str, max_tokens: int = 4) -> httpx.Response:
    """One request on a connection of its own (the kernel picks the worker per connection)."""
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    return httpx.post(f"{gw.url}/api/v1/chat/completions", headers=auth(label), json=body, timeout=120)


@contextmanager
def held_streams(gw: Gateway, label: str, count: int) -> Iterator[list[httpx.Response]]:
    """`count` long streams opened one after another, each on its own connection, held open (headers read) until the
    block ends; refused ones come back with their status.

    Only a run whose admitted streams were all still in flight after the last answer is handed over (the server's
    in-flight count equals the streams admitted). On a busy machine this process can go unscheduled for longer than
    a stream lasts (20 s and more with a CPU hog beside 2 cores), so a stream may end by itself and its slot go to a
    later request: such a run shows nothing about the limits, and it is closed and tried again."""
    body = {
        "messages": [{"role": "user", "content": "Tell a story"}],
        "max_tokens": LONG,
        "ignore_eos": True,
        "stream": True,
    }
    for _ in range(HOLD_ATTEMPTS):
        with ExitStack() as stack:
            responses = []
            for _ in range(count):
                client = stack.enter_context(httpx.Client(timeout=120))
                url = f"{gw.url}/api/v1/chat/completions"
                response = client.send(client.build_request("POST", url, headers=auth(label), json=body), stream=True)
                stack.callback(response.close)
                responses.append(response)
            if in_flight(gw) == sum(r.status_code == 200 for r in responses):
                yield responses
                return
        wait_for(lambda: in_flight(gw) == 0)
    raise AssertionError(f"in {HOLD_ATTEMPTS} runs, an admitted stream always ended before the last request")


def in_flight(gw: Gateway) -> int:
    return int(httpx.get(f"{gw.url}/status", headers=auth("open")).json()["in_flight"])


def test_connections_spread_over_the_workers(workers: Gateway) -> None:
    with ExitStack() as stack:
        for _ in range(16):  # kept-alive connections: 1 in 32768 that one worker holds them all
            client = stack.enter_context(httpx.Client(timeout=30))
            assert client.get(f"{workers.url}/health/live").status_code == 200
        per_worker = connections_by_worker(workers)
    assert len(per_worker) == 2 and sum(per_worker.values()) == 16 and all(per_worker.values()), per_worker


def test_concurrency_limits_hold_across_workers(workers: Gateway) -> None:
    with held_streams(workers, "pair", 8) as streams:
        statuses = [s.status_code for s in streams]
        assert statuses.count(200) == 2 and statuses.count(429) == 6, statuses
    wait_for(lambda: in_flight(workers) == 0)
    with held_streams(workers, "open", MAX_IN_FLIGHT + 3) as streams:
        statuses = [s.status_code for s in streams]
        assert statuses.count(200) == MAX_IN_FLIGHT, statuses  # the server-wide bound, not one per worker
        refused = streams[-1]
        assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
        assert json.loads(refused.read())["error"]["message"] == "Rate limit exceeded: server at capacity"
    wait_for(lambda: in_flight(workers) == 0)


def test_rate_limits_and_budgets_hold_across_workers(workers: Gateway) -> None:
    assert sorted(chat(workers, "rpm").status_code for _ in range(6)) == [200] * 3 + [429] * 3
    statuses = [chat(workers, "budget", max_tokens=8).status_code for _ in range(6)]
    # About 13 tokens each against a budget of 20: what is left after the first cannot cover another answer of up
    # to 8 tokens, whichever worker is asked.
    assert statuses == [200] + [402] * 5
    key = httpx.get(f"{workers.url}/api/v1/key", headers=auth("budget")).json()["data"]
    assert 0 < key["usage_tokens"] <= 20


def test_records_and_metrics_are_shared(workers: Gateway) -> None:
    def requests_seen() -> float:
        text = httpx.get(f"{workers.url}/metrics", headers=auth("ops")).text
        return metric(text, "mistral_local_requests_total", route="/api/v1/chat/completions", key="open")

    before = requests_seen()
    answers = [chat(workers, "open", max_tokens=3).json() for _ in range(8)]
    for answer in answers:  # asked at once, on a new connection: whichever worker answers has the record
        found = httpx.get(f"{workers.url}/api/v1/generation", params={"id": answer["id"]}, headers=auth("open"))
        assert found.status_code == 200, found.text
        assert found.json()["data"]["tokens_completion"] == answer["usage"]["completion_tokens"] == 3
    assert requests_seen() - before == 8  # counted by the workers that served them, summed by the one asked


def test_a_key_made_or_disabled_through_the_api_holds_on_every_worker(workers: Gateway) -> None:
    """Made on one connection, then used on 12 of their own (the kernel spreads them over both workers)."""
    made = httpx.post(f"{workers.url}/api/v1/keys", headers=auth("ops"), json={"name": "made-here"}, timeout=30)
    assert made.status_code == 201, made.text
    key, key_hash = made.json()["key"], made.json()["data"]["hash"]
    fresh = {"Authorization": f"Bearer {key}"}
    assert all(httpx.get(f"{workers.url}/api/v1/key", headers=fresh).status_code == 200 for _ in range(12))
    off = httpx.patch(f"{workers.url}/api/v1/keys/{key_hash}", headers=auth("ops"), json={"disabled": True})
    assert off.status_code == 200
    assert all(httpx.get(f"{workers.url}/api/v1/key", headers=fresh).status_code == 403 for _ in range(12))


def test_a_killed_worker_gives_back_its_admissions_and_is_replaced(workers: Gateway) -> None:
    before = worker_pids(workers)
    with held_streams(workers, "pair", 2) as streams:
        assert [s.status_code for s in streams] == [200, 200]
        holding = {pid: n for pid, n in connections_by_worker(workers).items() if n}
        victim = max(holding, key=holding.__getitem__)
        dying = psutil.Process(victim)
        dying.kill()
        # Until it is gone its listening socket still takes its share of new connections, which the kernel then resets
        # (SO_REUSEPORT: each worker has its own accept queue); CI once asked for /status in that instant.
        dying.wait(timeout=10)
        # Its streams end; the control process releases their admissions and starts another worker.
        wait_for(lambda: in_flight(workers) == 2 - holding[victim])
        wait_for(lambda: len(worker_pids(workers)) == 2 and victim not in worker_pids(workers))
    wait_for(lambda: in_flight(workers) == 0)
    with held_streams(workers, "pair", 3) as streams:
        assert [s.status_code for s in streams] == [200, 200, 429]
    assert worker_pids(workers) - before  # a new process serves in the dead one's place
    assert chat(workers, "open").status_code == 200


@contextmanager
def own_workers(name: str, gateway: Gateway, db: Path) -> Iterator[Gateway]:
    """A two-worker gateway of the test's own (without keys), attached to the session's engine, to be ended."""
    env = {"MISTRAL_LOCAL_ENGINE_API_KEY": ENGINE_KEY, **workers_env(db), "MISTRAL_LOCAL_API_KEYS": "[]"}
    gw = start_gateway(name, "--engine-url", f"http://127.0.0.1:{gateway.engine_port}", env=env)
    try:
        gw.wait_ready(timeout_s=60)
        yield gw
    finally:
        gw.stop()


def test_sigterm_drains_every_worker(gateway: Gateway, tmp_path: Path) -> None:
    with own_workers("gateway-workers-drain", gateway, tmp_path / "drain.sqlite3") as gw:
        tree = [psutil.Process(gw.proc.pid), *psutil.Process(gw.proc.pid).children(recursive=True)]
        started = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            streaming = pool.submit(stream_story, gw.url, started)
            assert started.wait(timeout=60)
            gw.proc.send_signal(signal.SIGTERM)
            wait_for_drain(gw.url)
            refused = httpx.post(
                f"{gw.url}/api/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
            )
            assert refused.status_code == 503 and refused.json()["error"]["message"] == "Server is shutting down"
            chunks, _ = streaming.result(timeout=300)
        assert chunks[-1]["usage"]["completion_tokens"] == STREAM_TOKENS  # type: ignore[index]
        assert gw.proc.wait(timeout=60) == 0
        assert not wait_gone(tree[1:], timeout_s=30)
        with sqlite3.connect(tmp_path / "drain.sqlite3") as db:  # the stream's record reached the disk
            rows = db.execute("SELECT completion_tokens FROM generations WHERE id = ?", (chunks[-1]["id"],)).fetchall()
        assert rows == [(STREAM_TOKENS,)]


def test_workers_exit_when_the_control_process_dies(gateway: Gateway, tmp_path: Path) -> None:
    with own_workers("gateway-workers-orphans", gateway, tmp_path / "orphans.sqlite3") as gw:
        children = [psutil.Process(pid) for pid in worker_pids(gw)]
        assert len(children) == 2
        (left,) = private_dirs(children)  # both workers' (server/workers/control.py)
        gw.proc.kill()
        assert not wait_gone(children, timeout_s=20)
        shutil.rmtree(left)  # the control process's run folder: what a reboot would clear
