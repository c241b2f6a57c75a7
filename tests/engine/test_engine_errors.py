"""Engine trouble seen by clients: a timeout is OpenRouter's 408; a second gateway attaches to a running engine."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway_process import ENGINE_KEY, Gateway, attached_gateway

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def impatient(gateway: Gateway) -> Iterator[Gateway]:
    """A gateway attached to the session's engine (attach mode), giving the engine one second per request."""
    with attached_gateway(
        "gateway-impatient", gateway, ENGINE_KEY, {"MISTRAL_LOCAL_ENGINE_REQUEST_TIMEOUT_S": "1"}
    ) as gw:
        yield gw


def test_attached_gateway_serves_and_engine_timeout_is_408(impatient: Gateway) -> None:
    quick = httpx.post(
        f"{impatient.url}/api/v1/chat/completions",
        timeout=30,
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
    )
    assert quick.status_code == 200
    slow = httpx.post(
        f"{impatient.url}/api/v1/chat/completions",
        timeout=30,
        # ignore_eos: the scaled-down model may end a sampled answer within the second (CI once got a 200).
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3000, "ignore_eos": True},
    )
    assert slow.status_code == 408
    timed_out = {"code": 408, "message": "Operation timed out. Please try again later."}
    assert slow.json() == {"error": timed_out | {"metadata": {"error_type": "timeout"}}}
