"""Schemathesis against the gateway's own OpenAPI document, with the real engine behind it, one test per operation:
no 5xx, every answer matching the document's schema for its status, every error in OpenRouter's shape. Hypothesis'
health checks are on. The number of cases run is written to test-output/fuzz-cases.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Ok

from server.access.auth import hash_key
from server.app import create_app
from tests.support.gateway_process import ENGINE_KEY, OUTPUT_DIR, Gateway, attached_gateway
from tests.support.served_app import gateway_settings, nowhere_engine

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


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI document, as its /openapi.json serves it (built here at collection time, so that each
    operation is a test of its own; the fuzz gateway's own document is checked against it)."""
    settings = gateway_settings()
    return create_app(settings, nowhere_engine(settings)).openapi()


SCHEMA = schemathesis.openapi.from_dict(openapi_document()).include(path_regex=r"^/(api/v1|health)")
RESULTS = list(SCHEMA.get_all_operations())
OPERATIONS = {f"{r.ok().method.upper()} {r.ok().path}": r.ok() for r in RESULTS if isinstance(r, Ok)}


def test_the_served_document_is_the_one_fuzzed(fuzz_gateway: Gateway) -> None:
    served = httpx.get(f"{fuzz_gateway.url}/openapi.json", headers=AUTH).json()
    assert served["paths"].keys() == openapi_document()["paths"].keys()
    assert all(isinstance(r, Ok) for r in RESULTS), "the OpenAPI document has invalid operations"
    assert len(OPERATIONS) >= 12


def check_error(response: Any) -> None:
    """An error is OpenRouter's shape, with the status as its code and its type where the API puts it."""
    if response.status_code >= 400:
        body = response.json()
        assert set(body) <= {"error", "error_type"}, body
        assert body["error"]["code"] == response.status_code
        kind = body.get("error_type") or body["error"].get("error_type") or body["error"]["metadata"]["error_type"]
        assert isinstance(kind, str) and kind, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation(fuzz_gateway: Gateway, label: str) -> None:
    """Generated cases, valid and invalid by the schema: never a 5xx, a body that matches the document's schema
    for its status (2xx answers included), every error in OpenRouter's shape."""
    operation = OPERATIONS[label]
    examples = 100 if operation.path.endswith("completions") else 25  # where the request logic lives

    @settings(max_examples=examples, deadline=None, database=None)
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        CASES[label] = CASES.get(label, 0) + 1
        response = case.call(base_url=fuzz_gateway.url, headers=AUTH, timeout=60)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        check_error(response)

    run()
