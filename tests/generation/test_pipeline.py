"""One generation on the local engine path (server/generation/pipeline.py), in front of the synthetic engine (an
OpenAI-compatible stand-in on loopback that streams vLLM's own chunk bytes, as many as `max_tokens` asks): the
server's output cap is the payload's one `max_tokens` (what the engine gets; the context check reads the same field),
a request's own limit wins under it, and a streamed answer is recorded once it ends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from server.bench.synthetic_engine import app as synthetic_app
from server.engine.attached import AttachedEngine
from server.serving import free_port
from server.settings import OPENROUTER_MODEL_ID
from tests.support.served_app import gateway_settings, served_app

TOKENS = 32  # the most the synthetic engine streams


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(synthetic_app(OPENROUTER_MODEL_ID, TOKENS, 0.001))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def streamed(url: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The stream's chunks and its generation id."""
    chunks = []
    request = {"messages": [{"role": "user", "content": "hi"}], "stream": True, **body}
    with httpx.stream("POST", f"{url}/api/v1/chat/completions", json=request, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunks.append(orjson.loads(line[6:]))
        return chunks, response.headers["x-generation-id"]


def content_chunks(chunks: list[dict[str, Any]]) -> int:
    return sum(1 for c in chunks for choice in c["choices"] if choice["delta"].get("content"))


def test_the_servers_cap_is_the_engines_max_tokens_and_a_smaller_ask_wins(engine_url: str) -> None:
    settings = gateway_settings(api_keys=[], max_output_tokens=7)
    engine = AttachedEngine(engine_url, "", settings.model_id, start_timeout_s=30)
    with served_app(settings, engine) as url:
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the gateway never saw the engine ready"
            time.sleep(0.05)
        capped, gen_id = streamed(url, {})
        assert content_chunks(capped) == 7 and capped[-1]["usage"]["completion_tokens"] == 7
        asked, _ = streamed(url, {"max_tokens": 3})
        assert content_chunks(asked) == 3
        record = httpx.get(f"{url}/api/v1/generation", params={"id": gen_id}).json()["data"]
        assert record["streamed"] is True and record["native_tokens_completion"] == 7
