"""An attached engine's follower against a real HTTP server that answers as vLLM does: one failed health check (an
idle connection closed just as it is reused, say) leaves it ready; three in a row take it back to waiting for
readiness, and it is ready again once the engine answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiohttp import web

from server.engine import attached, lifecycle
from server.engine.attached import AttachedEngine
from server.engine.vllm_release import PINNED
from server.serving import free_port
from server.settings import OPENROUTER_MODEL_ID


class Engine:
    def __init__(self) -> None:
        self.failing = 0  # health checks still to fail
        self.generations = 0

    async def health(self, _: web.Request) -> web.Response:
        if self.failing:
            self.failing -= 1
            return web.Response(status=503)
        return web.Response()

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": OPENROUTER_MODEL_ID, "max_model_len": 4096}]})

    async def completions(self, _: web.Request) -> web.Response:
        self.generations += 1
        return web.json_response({"choices": [{"text": "x"}]})

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"version": PINNED})


async def until(check: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within time"
        await asyncio.sleep(0.01)


def test_one_failed_check_is_not_an_outage_three_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attached, "WATCH_INTERVAL_S", 0.05)
    monkeypatch.setattr(lifecycle, "PROBE_INTERVAL_S", 0.05)

    async def run() -> None:
        engine = Engine()
        app = web.Application()
        app.router.add_get("/health", engine.health)
        app.router.add_get("/v1/models", engine.models)
        app.router.add_post("/v1/completions", engine.completions)
        app.router.add_get("/version", engine.version)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        follower = AttachedEngine(f"http://127.0.0.1:{port}", "", OPENROUTER_MODEL_ID, start_timeout_s=10)
        try:
            await follower.start()
            await until(lambda: follower.ready, 5)
            assert engine.generations == 1  # the readiness probe's one-token generation
            engine.failing = 1
            await until(lambda: engine.failing == 0, 2)
            await asyncio.sleep(0.3)  # several checks later
            assert follower.ready and engine.generations == 1  # still ready: no new probe, no generation
            engine.failing = 3
            # Three in a row: back to waiting for readiness, whose new probe (a generation) passes at once.
            await until(lambda: engine.generations == 2 and follower.ready, 5)
        finally:
            await follower.stop()
            await runner.cleanup()

    asyncio.run(run())
