"""An engine this gateway launches: start, wait until ready, watch, restart with backoff, stop.

- `EngineSupervisor` launches vLLM (through the reaper, in its own process group), streams its log lines into
  ours (server/engine/output.py), restarts it when it exits, since vLLM's API server exits when its engine core
  dies, and gives up with a diagnosis when it never becomes ready.
- `AttachedEngine` (server/engine/attached.py) follows an engine someone else runs; both share
  server/engine/lifecycle.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from server.engine.address import new_private_dir, private_dir, socket_path
from server.engine.diagnosis import Context, diagnose
from server.engine.launcher import EngineCommand
from server.engine.lifecycle import MAX_FAILED_HEALTH_CHECKS, WATCH_INTERVAL_S, EngineLifecycle, EngineState
from server.engine.output import EngineOutput
from server.engine.reaper import LIFELINE_ENV, PRIVATE_DIR_ENV

log = logging.getLogger("mistral_local.engine")

STOP_GRACE_S = 20.0  # SIGTERM, then this long, then SIGKILL for the whole process group


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.first_s * self.factor**attempt)


class EngineSupervisor(EngineLifecycle):
    """Launches and keeps alive one vLLM engine at `url`. `new_command` is called for every start: each start gets a
    fresh API key."""

    def __init__(
        self,
        new_command: Callable[[], EngineCommand],
        url: str,
        served_model: str,
        diagnosis: Context,
        *,
        start_timeout_s: float = 900.0,
        start_attempts: int = 3,
        backoff: Backoff = Backoff(),
    ) -> None:
        super().__init__(url, served_model, start_timeout_s)
        self._new_command = new_command
        self._diagnosis = diagnosis
        self._start_attempts = start_attempts
        self._backoff = backoff
        self._output = EngineOutput(self._saw_line)
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        # The gateway holds the write end for its whole life; see server/engine/reaper.py.
        self._lifeline_r, self._lifeline_w = os.pipe()
        # vLLM's internal ZMQ sockets and temporary files (by default in /tmp, modes after the umask, never removed):
        # in a 0700 directory of this engine's, the one its HTTP socket is in when it listens on ours.
        self._run_dir = private_dir(url) or new_private_dir()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        self._run_dir.mkdir(mode=0o700)
        self._task = asyncio.create_task(self._run(), name="engine-supervisor")

    async def _run(self) -> None:
        """Start, watch, restart with backoff. Starts that never reach ready count up to `start_attempts`, then the
        engine is FAILED with a diagnosis (an engine that was ready before is restarted however often it dies)."""
        attempt = 0
        while not self._stopping.is_set():
            self._set_state(EngineState.STARTING if self.restarts == 0 else EngineState.RESTARTING)
            try:
                was_ready = await self._run_once()
            except Exception:  # never end supervision on a surprise: the engine would be left unwatched
                log.exception("engine supervision failed; restarting the engine")
                was_ready = False
            if self._stopping.is_set():
                break
            attempt = 0 if was_ready else attempt + 1
            if not was_ready:
                self.last_failure = diagnose(list(self._output.recent), self._diagnosis)
                log.error("engine start %d of %d failed: %s", attempt, self._start_attempts, self.last_failure)
                if attempt >= self._start_attempts:
                    self._set_state(EngineState.FAILED)
                    self.failed.set()
                    return
            self.restarts += 1
            self._set_state(EngineState.RESTARTING)
            delay = self._backoff.delay(attempt)
            log.warning("engine exited; restarting in %.0f s (restart %d)", delay, self.restarts)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self) -> bool:
        """One engine process from launch to exit. True if it ever became ready."""
        cmd = self._new_command()
        self.api_key = cmd.api_key
        self._output = EngineOutput(self._saw_line)
        if (path := socket_path(cmd.url)) is not None:
            path.unlink(missing_ok=True)  # left by an engine that died: vLLM will not bind over it
        proc = await self._spawn(cmd)
        assert proc.stdout is not None
        pump = asyncio.create_task(self._output.pump(proc.stdout))
        was_ready = False
        try:
            await self._wait_ready(lambda: proc.returncode is None)
            self.last_failure = None
            self._set_state(EngineState.READY)
            was_ready = True
            await self._watch(proc)
        except (RuntimeError, TimeoutError) as exc:
            log.error("engine failed to start: %s", exc)
        finally:
            await self._terminate(proc)
            await pump
        return was_ready

    async def _spawn(self, cmd: EngineCommand) -> asyncio.subprocess.Process:
        log.info("launching engine on %s", cmd.url)
        run_dir = str(self._run_dir)  # the reaper removes it if the gateway dies without stop()
        env = os.environ | cmd.env | {LIFELINE_ENV: str(self._lifeline_r), PRIVATE_DIR_ENV: run_dir}
        env |= {"VLLM_RPC_BASE_PATH": run_dir, "TMPDIR": run_dir}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.engine.reaper",
            *cmd.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
            pass_fds=(self._lifeline_r,),
        )
        return self._proc

    def _saw_line(self, line: str) -> None:
        self.last_log_line = line

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """Return when the process exits, or after repeated failed health checks (a hung engine)."""
        failures = 0
        while failures < MAX_FAILED_HEALTH_CHECKS:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), WATCH_INTERVAL_S)
                log.warning("engine process exited with status %s", proc.returncode)
                return
            failures = 0 if await self._healthy() else failures + 1
        log.error("engine failed %d health checks in a row; restarting it", failures)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the engine's process group, SIGKILL it after STOP_GRACE_S; never leaves a process behind."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("engine ignored SIGTERM for %.0f s; killing it", STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        self._set_state(EngineState.STOPPING)
        self._stopping.set()
        if self._proc is not None and self._proc.returncode is None:
            await self._terminate(self._proc)
        if self._task is not None:
            await self._task
        self._set_state(EngineState.STOPPED)
        shutil.rmtree(self._run_dir, ignore_errors=True)
        await self.aclose()
