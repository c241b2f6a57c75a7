"""The benchmark client's first-token mark, against a stand-in that streams like vLLM on a model whose first
tokens decode to nothing: a role-only chunk at once, the first text a second later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import aiohttp
import pytest

from server.bench.client import Outcome, Target, send
from tests.support.loopback_http import serve_http

TEXT_DELAY_S = 1.0


class LateText(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        role = b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
        text = b'{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"length"}]}'
        usage = b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
        self.wfile.write(b"data: " + role + b"\n\n")
        self.wfile.flush()
        time.sleep(TEXT_DELAY_S)
        self.wfile.write(b"data: " + text + b"\n\ndata: " + usage + b"\n\ndata: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_http(LateText) as base:
        yield base


def timed(url: str, first_token: str) -> Outcome:
    async def run() -> Outcome:
        async with aiohttp.ClientSession() as session:
            return await send(session, Target(f"{url}/v1", "m", first_token=first_token), {"stream": True})

    return asyncio.run(run())


def test_vllm_mark_is_the_first_chunk_with_choices(url: str) -> None:
    out = timed(url, "choices")
    assert out.ok and out.output_tokens == 1
    assert out.ttft < TEXT_DELAY_S  # the role-only chunk, as `vllm bench serve` times it


def test_content_mark_waits_for_text(url: str) -> None:
    out = timed(url, "content")
    assert out.ok and out.ttft >= TEXT_DELAY_S
