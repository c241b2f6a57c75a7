"""The control process of `serve --workers N`: runs the engine and the shared state, keeps N workers alive, drains.

On SIGTERM or Ctrl-C every worker stops admitting at once (503, readiness 503), requests in flight in any worker
finish for up to `drain_timeout_s`, then the workers get SIGTERM, then the engine stops. A second signal skips the
drain. A worker that dies is replaced (its admissions were released when its connection closed); one that keeps
dying within seconds of its start stops the whole server, since it would leave the port half served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
import tempfile
import time
from pathlib import Path

from server.fleet.members import Fleet
from server.gateway_state import local_state
from server.serving import raise_if_failed, wait_drained
from server.settings import Settings
from server.workers.state_server import StateServer
from server.workers.worker import WorkerSpec

log = logging.getLogger("mistral_local.workers")
WORKER_STOP_S = 15.0  # after SIGTERM (uvicorn's own grace is 5 s), then SIGKILL
QUICK_EXIT_S = 10.0
MAX_QUICK_EXITS = 5


class WorkerPool:
    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.state_path, self.metrics_dir = run_dir / "state.sock", run_dir / "metrics"
        self.metrics_dir.mkdir()
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.failed = asyncio.Event()
        self._stopping = False
        self._keepers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._keepers = [
            asyncio.create_task(self._keep(index), name=f"worker-{index}") for index in range(self.settings.workers)
        ]

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from server.workers.worker import main; main()",
            stdin=asyncio.subprocess.PIPE,
            env=os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)},
            start_new_session=True,  # a terminal's Ctrl-C reaches the control process only; it drains the workers
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(WorkerSpec(self.settings, index, self.state_path, self.metrics_dir)))
        proc.stdin.close()
        return proc

    async def _keep(self, index: int) -> None:
        quick_exits = 0
        while not self._stopping:
            started = time.monotonic()
            proc = self.procs[index] = await self._spawn(index)
            status = await proc.wait()
            if self._stopping:
                return
            quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT_S else 0
            if quick_exits >= MAX_QUICK_EXITS:
                log.error("gateway worker %d exited %d times at start (last status %s)", index, quick_exits, status)
                self.failed.set()
                return
            log.error("gateway worker %d exited with status %s; starting another", index, status)
            await asyncio.sleep(0.5 * quick_exits)

    async def stop(self) -> None:
        self._stopping = True
        alive = [p for p in self.procs.values() if p.returncode is None]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), WORKER_STOP_S)
        except TimeoutError:
            log.warning("gateway workers ignored SIGTERM for %.0f s; killing them", WORKER_STOP_S)
            for proc in alive:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)


class Signals:
    """First SIGTERM/SIGINT: drain. Second: stop now."""

    def __init__(self) -> None:
        self.drain, self.now = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received)

    def _received(self) -> None:
        (self.now if self.drain.is_set() else self.drain).set()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def run_control(settings: Settings, engine: Fleet) -> None:
    """Serve until a signal (drained), until the engine fails to start (EngineFailed) or until workers cannot start
    (SystemExit 1)."""
    state = local_state(settings, engine)
    signals = Signals()
    with tempfile.TemporaryDirectory(prefix="mistral-local-") as run_dir:  # mode 0700: only this user connects
        shared = StateServer(state.admission, state.records, engine)
        pool = WorkerPool(settings, Path(run_dir))
        await state.records.open()
        try:
            await engine.start()
            await shared.start(pool.state_path)
            pool.start()
            log.info("gateway: %d workers on http://%s:%d", settings.workers, settings.host, settings.port)
            await _first(signals.drain, pool.failed, engine.failed)
            if signals.drain.is_set():
                state.admission.draining = True
                shared.publish()
                await wait_drained(state.admission, settings.drain_timeout_s, signals.now.is_set)
        finally:
            await pool.stop()
            await shared.close()
            await engine.stop()
            await state.records.close()
    raise_if_failed(engine)
    if pool.failed.is_set():
        raise SystemExit(1)
