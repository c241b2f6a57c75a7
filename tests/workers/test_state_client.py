"""The shared state between gateway workers and their control process, over a real Unix socket, with the real
Admission and RecordStore behind it: admissions, releases and records agree whichever connection they come from,
and no slot is lost to a request that gave up or a worker that vanished."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.access.admission import Demand
from server.access.auth import KeyLimits, Principal
from server.errors import EngineUnavailable, Overloaded, PaymentRequired
from server.gateway_state import LocalState, local_state
from server.schemas.record import GenerationRecord
from server.settings import Settings
from server.workers.engine_view import follow, view_fleet
from server.workers.state_client import SharedAdmission, SharedRecords, StateLink
from server.workers.state_server import StateServer

ANY = Principal(None, KeyLimits())
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"  # one another user may run
MEMBER = {
    "state": "ready",
    "url": "http://127.0.0.1:9",
    "api_key": "",
    "max_model_len": 4096,
    "load": {},
    "served_model": "m",
}
MEMBER |= {"images_per_prompt": None, "restarts": 0, "last_failure": None, "out": None}


@dataclass
class Control:
    state: LocalState
    server: StateServer
    path: Path

    async def link(self) -> StateLink:
        return await StateLink.connect(self.path, view_fleet(["engine"]), retry_after_s=2)


@asynccontextmanager
async def control(tmp_path: Path, **settings: object) -> AsyncIterator[Control]:
    engine = view_fleet(["engine"])
    follow(engine, {"members": [MEMBER]})
    config = Settings(db_path=tmp_path / "g.sqlite3", queue_timeout_s=5, **settings)  # type: ignore[arg-type]
    state = local_state(config, engine)
    server = StateServer(state.admission, state.records, engine)
    await state.records.open()
    await server.start(tmp_path / "state.sock")
    try:
        yield Control(state, server, tmp_path / "state.sock")
    finally:
        await server.close()
        await state.records.close()


async def eventually(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def test_a_request_that_gave_up_waiting_does_not_keep_its_slot(tmp_path: Path) -> None:
    async def go() -> None:
        async with control(tmp_path, max_in_flight=1, max_waiting=1) as c:
            admission = SharedAdmission(await c.link())
            held = await admission.admit(ANY, Demand(10, 10))
            waiting = asyncio.create_task(admission.admit(ANY, Demand(10, 10)))
            await eventually(lambda: c.state.admission.waiting == 1)
            waiting.cancel()  # its client left while it waited in the control process's queue
            held.release()
            # The control process admits the waiter anyway; the worker gives that slot straight back.
            await eventually(lambda: c.state.admission.in_flight == 0 and c.state.admission.waiting == 0)
            (await admission.admit(ANY, Demand(10, 10))).release()

    run(go)


def test_a_vanished_worker_gives_back_its_admissions(tmp_path: Path) -> None:
    async def go() -> None:
        async with control(tmp_path, max_in_flight=2) as c:
            link = await c.link()
            pair = Principal("pair", KeyLimits(concurrent_requests=1), key_id="id-pair")
            await SharedAdmission(link).admit(pair, Demand(10, 10))
            other = SharedAdmission(await c.link())
            with pytest.raises(Overloaded):
                await other.admit(pair, Demand(10, 10))  # one set of per-key limits for all workers
            assert link.transport is not None
            link.transport.abort()  # the worker died with the request in flight
            await eventually(lambda: c.state.admission.in_flight == 0)
            await other.admit(pair, Demand(10, 10))

    run(go)


def test_errors_cross_with_their_status_retry_after_and_metadata(tmp_path: Path) -> None:
    async def go() -> None:
        async with control(tmp_path, max_in_flight=1, max_waiting=0, retry_after_s=7) as c:
            admission = SharedAdmission(await c.link())
            await admission.admit(ANY, Demand(10, 10))
            with pytest.raises(Overloaded) as full:
                await admission.admit(ANY, Demand(10, 10))
            assert (full.value.retry_after, full.value.metadata) == (7, {"limit_source": "mistral-local"})
            with pytest.raises(PaymentRequired, match="token budget of 0"):
                await admission.admit(Principal("spent", KeyLimits(token_budget=0), key_id="id-spent"), Demand(1, 1))
            c.state.admission.draining = True
            c.server.publish()
            with pytest.raises(EngineUnavailable, match="shutting down"):
                await admission.admit(ANY, Demand(10, 10))
            await eventually(lambda: admission.draining)

    run(go)


def test_a_record_sent_on_one_connection_is_readable_on_another(tmp_path: Path) -> None:
    async def go() -> None:
        async with control(tmp_path) as c:
            writer, reader = SharedRecords(await c.link()), SharedRecords(await c.link())
            record = GenerationRecord.ended_now(
                usage={"prompt_tokens": 5, "completion_tokens": 7, "cost": 0.25},
                started=0.0,
                first_token_at=None,
                attempts=[],
                id="gen-shared",
                model="m",
                provider="Local",
                api_type="completions",
                num_images=0,
                streamed=True,
                cancelled=False,
                finish_reason="stop",
                native_finish_reason="stop",
                key_label="alice",
                key_id="id-alice",
            )
            writer.add(record)
            assert await reader.get("gen-shared") == record
            assert await reader.usage("id-alice") == (12, 0.25)
            assert await reader.get("gen-missing") is None

    run(go)


def test_calls_fail_with_a_503_once_the_control_process_is_gone(tmp_path: Path) -> None:
    async def go() -> None:
        async with control(tmp_path) as c:
            link = await c.link()
        await asyncio.wait_for(link.lost.wait(), 5)
        with pytest.raises(EngineUnavailable) as gone:
            await SharedAdmission(link).admit(ANY, Demand(1, 1))
        assert gone.value.retry_after == 2

    run(go)


def test_an_oversized_or_broken_frame_closes_that_connection_only(tmp_path: Path) -> None:
    """A frame may claim up to 4 GiB: the control process would buffer it all. It closes the connection instead."""

    async def go() -> None:
        async with control(tmp_path) as c:
            good = SharedAdmission(await c.link())
            for garbage in (struct.pack("!I", 1 << 30) + b"x" * 1024, struct.pack("!I", 3) + b"{{{"):
                reader, writer = await asyncio.open_unix_connection(str(c.path))
                writer.write(garbage)
                await writer.drain()
                assert await asyncio.wait_for(reader.read(), 5) is not None  # read to EOF: the server closed it
                writer.close()
            (await good.admit(ANY, Demand(1, 1))).release()  # everyone else is served as before

    run(go)


def test_a_record_that_cannot_be_real_is_dropped(tmp_path: Path) -> None:
    """Negative tokens would erase a key's spending: the record is refused, the key's total stays."""

    async def go() -> None:
        async with control(tmp_path) as c:
            link = await c.link()
            fields = {
                "id": "gen-x", "model": "m", "provider": "Local", "api_type": "completions", "created_at": 1.0,
                "prompt_tokens": 5, "completion_tokens": 5, "cached_tokens": 0, "num_images": 0, "cost": 0.0,
                "latency_ms": 1, "ttft_ms": None, "streamed": False, "cancelled": False, "finish_reason": "stop",
                "native_finish_reason": "stop", "key_label": "alice", "key_id": "id-alice", "attempts": "[]",
            }  # fmt: skip
            link.send({"op": "record", "record": fields})
            link.send({"op": "record", "record": fields | {"id": "gen-y", "prompt_tokens": -1_000_000}})
            link.send({"op": "record", "record": fields | {"id": "gen-z", "cost": float("nan")}})
            link.send({"op": "record", "record": fields | {"id": "gen-w", "completion_tokens": "many"}})
            records = SharedRecords(link)
            assert await records.usage("id-alice") == (10, 0.0)
            assert await records.get("gen-y") is None and await records.get("gen-z") is None

    run(go)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_user_cannot_use_the_socket_even_if_its_directory_is_opened() -> None:
    opened = Path(tempfile.mkdtemp(prefix="shared-state-"))  # pytest's own tmp_path is in a 0700 directory
    opened.chmod(0o755)

    async def go() -> None:
        async with control(opened) as c:
            c.path.chmod(0o777)
            probe = (
                "import socket, struct, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                f"s.connect({str(c.path)!r})\n"
                "s.settimeout(5)\n"
                "sys.exit(0 if s.recv(65536) == b'' else 1)\n"  # closed at once, before the state is sent
            )
            proc = await asyncio.create_subprocess_exec(SYSTEM_PYTHON, "-c", probe, user=65534)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert len(c.server.workers) == 0

    try:
        run(go)
    finally:
        shutil.rmtree(opened)
