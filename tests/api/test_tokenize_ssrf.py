"""/tokenize under the chat path's rules, with the real engine: the gateway's image policy and field allow-list, and
an engine that fetches nothing by itself even when asked directly. A listener on loopback records every request that
reaches it: none may."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from server.engine.launcher import NO_MEDIA_DOMAIN
from server.settings import OPENROUTER_MODEL_ID
from tests.support.gateway_process import ENGINE_KEY, Gateway
from tests.support.helpers import png_data_url
from tests.support.loopback_http import serve_http

pytestmark = pytest.mark.engine

REACHED: list[str] = []


class _Listener(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        REACHED.append(self.path)
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    with serve_http(_Listener) as url:
        yield int(url.rsplit(":", 1)[1])


def image_message(url: str) -> list[dict[str, Any]]:
    content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}}]
    return [{"role": "user", "content": content}]


def test_tokenize_goes_through_the_gateways_image_policy(gateway: Gateway, listener: int) -> None:
    """localhost is not on the session gateway's allowlist (127.0.0.1 is): refused before any connection."""
    REACHED.clear()
    body = {"model": OPENROUTER_MODEL_ID, "messages": image_message(f"http://localhost:{listener}/latest/meta-data/")}
    r = httpx.post(f"{gateway.url}/api/v1/tokenize", json=body, timeout=60)
    assert r.status_code == 400
    assert "localhost is not on this server's allowlist" in r.json()["error"]["message"]
    assert REACHED == []


def test_the_engine_fetches_nothing_even_when_asked_directly(gateway: Gateway, listener: int) -> None:
    REACHED.clear()
    engine = f"http://127.0.0.1:{gateway.engine_port}"
    body = {"model": OPENROUTER_MODEL_ID, "messages": image_message(f"http://127.0.0.1:{listener}/latest/meta-data/")}
    r = httpx.post(f"{engine}/tokenize", json=body, headers={"authorization": f"Bearer {ENGINE_KEY}"}, timeout=60)
    # Refused for the reason that matters (the key was right): its domain is not the one name it may fetch from.
    assert r.status_code == 400, r.text
    assert "The URL must be from one of the allowed domains" in r.text and NO_MEDIA_DOMAIN in r.text
    assert REACHED == []


def test_tokenize_counts_images_the_gateway_fetched_and_ignores_other_fields(gateway: Gateway) -> None:
    url = f"{gateway.url}/api/v1/tokenize"
    plain = {"model": OPENROUTER_MODEL_ID, "messages": image_message(png_data_url(300, 200))}
    counted = httpx.post(url, json=plain, timeout=60)
    assert counted.status_code == 200
    assert counted.json()["count"] > 100  # the image's tokens (a 300×200 PNG is about 105)
    # Fields vLLM would take and this gateway does not pass on: its template and processor settings stay the model's.
    tampered = plain | {"chat_template": "{{ 'x' * 5000 }}", "mm_processor_kwargs": {"max_image_size": 28}}
    assert httpx.post(url, json=tampered, timeout=60).json()["count"] == counted.json()["count"]
    prompt = httpx.post(url, json={"model": OPENROUTER_MODEL_ID, "prompt": "Hello world"}, timeout=60).json()
    assert prompt["count"] == len(prompt["tokens"]) >= 2
    both = httpx.post(url, json={"prompt": "x", "messages": plain["messages"]}, timeout=60)
    assert both.status_code == 400
