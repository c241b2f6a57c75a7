"""Engines that stop answering, against real HTTP servers: the watcher takes a hung or refusing engine out of
rotation and back once it answers; a request goes on to the next engine when one refuses the connection; taking an
engine out cuts the requests still waiting on it (a hung engine holds no client)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry import trace

from server.engine.lifecycle import EngineState
from server.errors import EngineError, EngineUnavailable
from server.fleet import watch
from server.fleet.client import EngineClient, Sessions
from server.fleet.members import Fleet, Member
from server.fleet.routing import Conversation, Router
from server.serving import free_port
from server.workers.engine_view import EngineView

PAGE = (Path(__file__).resolve().parents[1] / "fixtures" / "vllm" / "metrics-0.32.0-cpu.txt").read_text()
ANSWER = {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


class Engine:
    """An HTTP server that answers as vLLM does, or hangs when told to."""

    def __init__(self) -> None:
        self.hang = asyncio.Event()
        self.served = 0

    async def metrics(self, _: web.Request) -> web.Response:
        await self._maybe_hang()
        return web.Response(text=PAGE)

    async def chat(self, _: web.Request) -> web.Response:
        await self._maybe_hang()
        self.served += 1
        return web.json_response(ANSWER)

    async def _maybe_hang(self) -> None:
        if self.hang.is_set():
            await asyncio.sleep(3600)


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]]]]:
    app = web.Application()
    app.router.add_get("/metrics", engine.metrics)
    app.router.add_post("/v1/chat/completions", engine.chat)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", runner.cleanup
    finally:
        await runner.cleanup()


def member(name: str, url: str, state: EngineState = EngineState.READY, model: str = "m") -> Member:
    view = EngineView()
    view.url, view.state, view.served_model = url, state, model
    return Member(name, view)


async def until(check: Callable[[], bool], within_s: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, "not within time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture(autouse=True)
def quick_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "PROBE_EVERY_S", 0.05)
    monkeypatch.setattr(watch, "PROBE_TIMEOUT_S", 0.2)


def test_the_watcher_takes_a_hung_or_refusing_engine_out_and_back() -> None:
    async def run() -> None:
        engine = Engine()
        async with running(engine) as (url, stop):
            # Another member, starting (its own supervision's to watch, not probed): ejecting one has a point.
            starting = member("b", "http://127.0.0.1:9", EngineState.STARTING)
            watched = member("a", url)
            probing = asyncio.create_task(watch.watch_members([watched, starting]))
            try:
                await until(lambda: watched.load.prefix_queries == 52, 2)  # the page's figures
                engine.hang.set()
                await until(lambda: watched.out is not None, 2)
                assert watched.out == "2 probes unanswered (ReadTimeout)"
                engine.hang.clear()
                await until(lambda: watched.out is None, 2)
                await stop()  # nothing listens any more
                await until(lambda: watched.out == "refuses connections", 1)
            finally:
                probing.cancel()

    asyncio.run(run())


def test_a_fleet_of_one_is_read_but_never_taken_out() -> None:
    """Nowhere else to send its requests: a slow or gone engine stays, its supervision restarts it."""

    async def run() -> None:
        engine = Engine()
        async with running(engine) as (url, stop):
            alone = member("a", url)
            probing = asyncio.create_task(watch.watch_members([alone]))
            try:
                await until(lambda: alone.load.prefix_queries == 52, 2)
                engine.hang.set()
                await asyncio.sleep(1)  # several probes unanswered
                await stop()
                await asyncio.sleep(0.3)
                assert alone.out is None
            finally:
                probing.cancel()

    asyncio.run(run())


@asynccontextmanager
async def client_of(*members: Member) -> AsyncIterator[EngineClient]:
    fleet = Fleet(list(members), watch=False)
    sessions = Sessions(fleet, 30)
    try:
        yield EngineClient(sessions, fleet, Router(), 1, trace.get_tracer("test"))
    finally:
        await sessions.aclose()


def test_a_refused_connection_goes_on_to_the_next_engine() -> None:
    async def run() -> None:
        engine = Engine()
        async with running(engine) as (url, _):
            gone, alive = member("gone", f"http://127.0.0.1:{free_port()}"), member("alive", url)
            async with client_of(gone, alive) as client:
                # Every conversation, wherever it would go first, is answered.
                for i in range(8):
                    talk = Conversation("key", {"session_id": f"s{i}"}, None)
                    assert await client.post("/v1/chat/completions", {}, talk=talk) == ANSWER
                assert engine.served == 8 and gone.out == "refused a connection" and alive.out is None
                assert gone.in_flight == alive.in_flight == 0
                alive.eject("test")
                with pytest.raises(EngineUnavailable) as none_left:
                    await client.post("/v1/chat/completions", {})
                assert none_left.value.availability == {
                    "code": "temporarily_unavailable",
                    "retryable": True,
                    "retry_after": 1,
                }

    asyncio.run(run())


def test_taking_an_engine_out_cuts_the_requests_waiting_on_it() -> None:
    async def run() -> None:
        engine = Engine()
        engine.hang.set()
        async with running(engine) as (url, _):
            hung = member("hung", url)
            async with client_of(hung) as client:
                waiting = asyncio.create_task(client.post("/v1/chat/completions", {}))
                await until(lambda: hung.in_flight == 1, 2)
                await asyncio.sleep(0.1)  # sent, and waiting for an answer that never comes
                hung.eject("2 probes unanswered")
                with pytest.raises(EngineError):
                    await asyncio.wait_for(waiting, 2)  # at once, not at the request timeout (30 s here)
                assert hung.in_flight == 0

    asyncio.run(run())


def test_a_request_goes_only_to_engines_serving_its_model() -> None:
    async def run() -> None:
        small, other = Engine(), Engine()
        async with running(small) as (small_url, _), running(other) as (other_url, _):
            a = member("a", small_url, model="mistral-small")
            b = member("b", other_url, model="magistral-small")
            async with client_of(a, b) as client:
                for i in range(6):  # sessions that rendezvous hashing would spread over both
                    talk = Conversation("key", {"session_id": f"s{i}"}, None)
                    await client.post("/v1/chat/completions", {"model": "magistral-small"}, talk=talk)
                assert (small.served, other.served) == (0, 6)
                b.eject("test")
                with pytest.raises(EngineUnavailable) as gone:  # the other model's engine does not stand in
                    await client.post("/v1/chat/completions", {"model": "magistral-small"})
                assert str(gone.value) == "The engines serving this model are unreachable"
                assert await client.post("/v1/chat/completions", {"model": "mistral-small"}) == ANSWER
                assert (small.served, other.served) == (1, 6)

    asyncio.run(run())
