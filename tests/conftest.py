from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from server.planning.selection import tiny_checkpoint
from server.serving import free_port
from tests.e2e.image_server import serve_images
from tests.gateway_process import CACHE_DIR, Gateway, start_gateway

ENGINE_KEY = secrets.token_urlsafe(24)
DEAD_PROXY = {
    name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
}


# Its fixture starts a second engine while the session gateway's starts (on 2 cores, about 110 s for both instead of
# 80 s each, one after the other): it goes first, before anything has started the session gateway.
FIRST = "tests/e2e/test_fleet.py::"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fleet's tests first; tests that kill the shared engine after all the others (a stable sort keeps the rest
    in order)."""
    items.sort(key=lambda item: (item.get_closest_marker("disruptive") is not None, not item.nodeid.startswith(FIRST)))


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
