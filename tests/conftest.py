from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from server.checkpoint.tiny import write_tiny
from server.serve.engine_choice import tiny_checkpoint
from server.serving import free_port
from tests.support.gateway_process import CACHE_DIR, ENGINE_KEY, Gateway, start_gateway
from tests.support.helpers import STRICT_WEATHER
from tests.support.image_server import serve_images
from tests.support.otlp_receiver import Receiver, otlp_receiver

DEAD_PROXY = {
    name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
}


# Its fixture starts a second engine while the session gateway's starts (on 2 cores, about 110 s for both instead of
# 80 s each, one after the other): it goes first, before anything has started the session gateway.
FIRST = "tests/fleet/test_fleet_engines.py::"
# The modules the Magistral gateway serves run one after the other, near the end: its engine lives from their first
# test to the session's end, beside the others'.
MAGISTRAL_MODULES = ("tests/generation/test_reasoning_on_engine.py::", "tests/telemetry/test_tracing_on_engine.py::")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each room's tests sit beside its other tests (tests/ mirrors server/); they run in this order: the tests that
    need no engine, then those that do (`engine`), the fleet's first, Magistral's last; tests that kill the shared
    engine after all the others. A stable sort keeps each group, and so each module, in order."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("disruptive") is not None,
            item.get_closest_marker("engine") is not None,
            not item.nodeid.startswith(FIRST),
            item.nodeid.startswith(MAGISTRAL_MODULES),
        )
    )


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return tiny_checkpoint(CACHE_DIR)


@pytest.fixture(scope="session")
def gateway(tiny_model: Path) -> Iterator[Gateway]:
    """One gateway supervising one cpu-tiny engine for the whole session, started as the README's quick start
    starts it: no profile, no model (profile auto: no GPU and no weights, so the scaled-down checkpoint on cpu-tiny).
    Its engine listens on a known port with a known key, so tests that need other gateway settings attach to it
    instead of starting another."""
    engine_port = free_port()
    gw = start_gateway(
        "gateway",
        "--engine-port",
        str(engine_port),
        # The tests' image server is on loopback, which the default image policy ("public") refuses. A dead proxy in
        # the environment proves gateway-to-engine traffic never goes through a proxy.
        env={
            "MISTRAL_LOCAL_ENGINE_API_KEY": ENGINE_KEY,
            "MISTRAL_LOCAL_IMAGE_FETCH_POLICY": "allowlist",
            "MISTRAL_LOCAL_IMAGE_FETCH_ALLOWLIST": '["127.0.0.1"]',
            # The shutdown test drains a stream of nearly the whole context, which a slow machine takes over 30 s to
            # finish.
            "MISTRAL_LOCAL_DRAIN_TIMEOUT_S": "180",
            **DEAD_PROXY,
        },
    )
    gw.engine_port = engine_port
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


# Random weights rarely write [THINK] (token 34): the `think` preset makes it the first token, and its reasoning
# budget (3 tokens) then makes the engine end the reasoning, so the answer follows. A request's own fields win.
THINK = {"logit_bias": {"34": 100}, "reasoning": {"max_tokens": 3}}
# And then a call ([TOOL_CALLS], token 9, pushed less than [THINK]), as Small 3.2's recipe writes one (test_fleet.py).
CALL = {"logit_bias": {"34": 100, "9": 50}, "parallel_tool_calls": False, "temperature": 0}
CALL |= {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
THINK_PRESETS = {
    "think": {"parameters": THINK},
    "think-call": {"parameters": THINK | CALL, "tools": [STRICT_WEATHER]},
}


@pytest.fixture(scope="session")
def otlp() -> Iterator[Receiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture(scope="session")
def magistral(otlp: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway serving a scaled-down Magistral Small 1.2 (its v13 tokenizer with [THINK] and [/THINK], its record:
    so its engine gets vLLM's reasoning parser and the gateway's budget processor) with two workers, tracing on
    (exported to a real OTLP receiver, the engine's too) and JSON logs. One engine start serves two modules: the
    reasoning in every dialect (test_reasoning.py) and the traces (test_tracing.py)."""
    model = write_tiny(tmp_path_factory.mktemp("magistral") / "model", release="magistral")
    env = {
        "MISTRAL_LOCAL_OTLP_ENDPOINT": otlp.endpoint,  # a bare collector address: /v1/traces is added
        "MISTRAL_LOCAL_WORKERS": "2",
        # Image hosts off the list are refused at once, by a message that names the host.
        "MISTRAL_LOCAL_IMAGE_FETCH_POLICY": "allowlist",
        "MISTRAL_LOCAL_IMAGE_FETCH_ALLOWLIST": '["127.0.0.1"]',
        "MISTRAL_LOCAL_LOG_FORMAT": "json",
        "MISTRAL_LOCAL_PRESETS": json.dumps(THINK_PRESETS),
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export each batch after 0.1 s, not 5 s (gateway and engine alike)
    }
    gw = start_gateway("gateway-magistral", "--profile", "cpu-tiny", "--model", str(model), env=env)
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def image_server() -> Iterator[str]:
    with serve_images() as url:
        yield url


@pytest.fixture(scope="session")
def api(gateway: Gateway) -> Iterator[openai.OpenAI]:
    """The OpenAI SDK configured as for OpenRouter: only the base URL differs."""
    with openai.OpenAI(base_url=f"{gateway.url}/api/v1", api_key="sk-or-v1-local", max_retries=0, timeout=120) as c:
        yield c
