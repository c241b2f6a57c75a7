"""Schemathesis against the gateway's own OpenAPI document, with the real engine behind it: no 5xx, and every error
in OpenRouter's shape. The number of cases run is written to test-output/fuzz-cases.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from server.access.auth import hash_key
from tests.conftest import ENGINE_KEY
from tests.gateway_process import OUTPUT_DIR, Gateway, attached_gateway

pytestmark = pytest.mark.engine

KEY = "sk-ml-fuzz-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CASES: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzz_gateway(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        "MISTRAL_LOCAL_API_KEYS": json.dumps([{"label": "fuzz", "sha256": hash_key(KEY)}]),
        # Generated requests stay cheap, and no generated URL makes the gateway reach out.
        "MISTRAL_LOCAL_MAX_OUTPUT_TOKENS": "16",
        "MISTRAL_LOCAL_IMAGE_FETCH_POLICY": "deny",
        "MISTRAL_LOCAL_DB_PATH": str(tmp_path_factory.mktemp("fuzz") / "g.sqlite3"),
    }
    try:
        with attached_gateway("gateway-fuzz", gateway, ENGINE_KEY, env, headers=AUTH) as gw:
            yield gw
    finally:
        (OUTPUT_DIR / "fuzz-cases.json").write_text(
            json.dumps({"cases": sum(CASES.values()), "by_operation": CASES}, indent=2)
        )


def check(response: Any, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert body["error"]["code"] == response.status_code
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_no_5xx_and_openrouter_errors(fuzz_gateway: Gateway) -> None:
    """Every operation of /api/v1 and /health: generated cases, valid and invalid by the schema."""
    spec = httpx.get(f"{fuzz_gateway.url}/openapi.json", headers=AUTH).json()
    schema = schemathesis.openapi.from_dict(spec).include(path_regex=r"^/(api/v1|health)")
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), "the OpenAPI document has invalid operations"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 12
    for operation in operations:
        fuzz_operation(operation, fuzz_gateway.url)


def fuzz_operation(operation: Any, base_url: str) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    examples = 100 if operation.path.endswith("completions") else 25  # where the request logic lives

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        CASES[label] = CASES.get(label, 0) + 1
        check(case.call(base_url=base_url, headers=AUTH, timeout=60), label)

    run()
