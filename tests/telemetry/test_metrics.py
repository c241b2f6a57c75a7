"""Prometheus metrics from the gateway: requests, latencies, tokens, engine state; labels carry no content."""

from __future__ import annotations

import httpx
import pytest

from tests.support.gateway_process import Gateway
from tests.support.helpers import metric

pytestmark = pytest.mark.engine


def test_metrics_count_requests_tokens_and_engine_state(gateway: Gateway) -> None:
    before = httpx.get(f"{gateway.url}/metrics").text
    with httpx.stream(
        "POST",
        f"{gateway.url}/api/v1/chat/completions",
        timeout=60,
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True},
    ) as r:
        list(r.iter_lines())
    httpx.post(f"{gateway.url}/api/v1/chat/completions", json={"model": "acme/x", "messages": []})
    after = httpx.get(f"{gateway.url}/metrics").text
    route = "/api/v1/chat/completions"
    assert (
        metric(after, "mistral_local_requests_total", route=route, status="200")
        == metric(before, "mistral_local_requests_total", route=route, status="200") + 1
    )
    assert (
        metric(after, "mistral_local_requests_total", route=route, status="400")
        == metric(before, "mistral_local_requests_total", route=route, status="400") + 1
    )
    assert (
        metric(after, "mistral_local_tokens_total", direction="out")
        - metric(before, "mistral_local_tokens_total", direction="out")
        == 5
    )
    assert (
        metric(after, "mistral_local_time_to_first_token_seconds_count")
        == metric(before, "mistral_local_time_to_first_token_seconds_count") + 1
    )
    assert metric(after, "mistral_local_engine_ready") == 1
    assert "mistral_local_queue_depth" in after and "mistral_local_in_flight" in after
