"""Requests the engine-backed tests of several rooms send, and what they read back."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai

from server.settings import OPENROUTER_MODEL_ID
from tests.support.gateway_process import ENGINE_KEY, Gateway
from tests.support.helpers import metric

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]


def gateway_in_flight(gateway: Gateway) -> float:
    """The gateway's own gauge is live (vLLM refreshes its gauges lazily)."""
    return metric(httpx.get(f"{gateway.url}/metrics").text, "mistral_local_in_flight")


def engine_metric(gateway: Gateway, name: str) -> float:
    """A metric of the session gateway's engine, from vLLM's own /metrics."""
    metrics = httpx.get(
        f"http://127.0.0.1:{gateway.engine_port}/metrics", headers={"Authorization": f"Bearer {ENGINE_KEY}"}
    ).text
    return metric(metrics, name)


def running_requests(gateway: Gateway) -> float:
    return engine_metric(gateway, "vllm:num_requests_running")


def greedy(client: openai.OpenAI) -> list[str]:
    out = []
    for prompt in PROMPTS:
        r = client.completions.create(model=OPENROUTER_MODEL_ID, prompt=prompt, max_tokens=16, temperature=0)
        out.append(r.choices[0].text)
    return out


STREAM_TOKENS = 4000


def stream_story(url: str, started: threading.Event) -> tuple[list[dict[str, object]], float]:
    """Streams one long answer; sets `started` at the first chunk; returns the chunks and when the last arrived."""
    body = {
        "messages": [{"role": "user", "content": "Tell a story"}],
        "max_tokens": STREAM_TOKENS,
        "ignore_eos": True,  # an early end of sequence would end the stream before the drain is checked
        "temperature": 1.0,
        "stream": True,
    }
    chunks: list[dict[str, object]] = []
    with httpx.stream("POST", f"{url}/api/v1/chat/completions", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunks.append(json.loads(line.removeprefix("data: ")))
                started.set()
    return chunks, time.monotonic()


def wait_for_drain(url: str) -> httpx.Response:
    """Readiness once it reports the drain: the signal reaches the gateway's event loop a moment after it is sent."""
    deadline = time.monotonic() + 30
    while (ready := httpx.get(f"{url}/health/ready")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready.status_code == 503, ready.text
    return ready
