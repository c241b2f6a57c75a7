"""Schemathesis against the gateway's own OpenAPI document, with the real engine behind it: no 5xx, and every error
in OpenRouter's shape. The number of cases run is written to test-output/fuzz-cases.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from server.auth import hash_key
from tests.conftest import ENGINE_KEY
from tests.gateway_process import OUTPUT_DIR, Gateway, start_gateway

pytestmark = pytest.mark.engine

KEY = "sk-ml-fuzz-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CASES: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzz_gateway(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        "MISTRAL_LOCAL_ENGINE_API_KEY": ENGINE_KEY,
        "MISTRAL_LOCAL_API_KEYS": json.dumps([{"label": "fuzz", "sha256": hash_key(KEY)}]),
        # Generated requests stay cheap, and no generated URL makes the gateway reach out.
        "MISTRAL_LOCAL_MAX_OUTPUT_TOKENS": "16",
        "MISTRAL_LOCAL_IMAGE_FETCH_POLICY": "deny",
        "MISTRAL_LOCAL_DB_PATH": str(tmp_path_factory.mktemp("fuzz") / "g.sqlite3"),
    }
    gw = start_gateway("gateway-fuzz", "--engine-url", f"http://127.0.0.1:{gateway.engine_port}", env=env)
    try:
        gw.wait_ready(timeout_s=60, headers=AUTH)
        yield gw
    finally:
        gw.stop()
        (OUTPUT_DIR / "fuzz-cases.json").write_text(
            json.dumps({"cases": sum(CASES.values()), "by_operation": CASES}, indent=2)
        )


@pytest.fixture(scope="module")
def api_schema(fuzz_gateway: Gateway) -> Any:
    spec = httpx.get(f"{fuzz_gateway.url}/openapi.json", headers=AUTH).json()
    return schemathesis.openapi.from_dict(spec).include(path_regex=r"^/(api/v1|health)")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_openrouter_errors(case: Any, fuzz_gateway: Gateway) -> None:
    response = case.call(base_url=fuzz_gateway.url, headers=AUTH, timeout=60)
    label = f"{case.method} {case.path}"
    CASES[label] = CASES.get(label, 0) + 1
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert body["error"]["code"] == response.status_code
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
