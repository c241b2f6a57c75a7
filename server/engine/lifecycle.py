"""What both kinds of engine share (`EngineSupervisor`, which launches vLLM, and `AttachedEngine`, which follows one
someone else runs): the states an engine goes through, the one small interface the gateway reads (`state`, `url`,
`api_key`, `start`, `stop`), and the readiness loop."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable

import httpx

from server.engine.address import http_base, httpx_client
from server.engine.readiness import NotReady, probe

log = logging.getLogger("mistral_local.engine")

PROBE_INTERVAL_S = 1.0
WATCH_INTERVAL_S = 5.0
MAX_FAILED_HEALTH_CHECKS = 3


class EngineState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    FAILED = "failed"  # never became ready in `start_attempts` tries: the server exits with the diagnosis
    UNREACHABLE = "unreachable"  # a fleet whose ready engines all stopped answering (server/fleet/members.py)


class EngineLifecycle:
    """State shared by both kinds, and the readiness loop."""

    def __init__(self, url: str, served_model: str, start_timeout_s: float) -> None:
        self.served_model = served_model
        self.start_timeout_s = start_timeout_s
        self.state = EngineState.STOPPED
        self.url = url  # unix:PATH or http://HOST:PORT (server/engine/address.py)
        self.api_key = ""
        self.restarts = 0
        self.max_model_len: int | None = None
        self.images_per_prompt: int | None = None  # the profile's limit, when this gateway launched the engine
        self.last_log_line = ""
        self.last_failure: str | None = None  # why the last start failed, while it tries again (readiness shows it)
        self.failed = asyncio.Event()  # set with state FAILED: the gateway exits
        self.state_since = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._http_client: httpx.AsyncClient | None = None
        self.on_change: list[Callable[[], None]] = []  # after each change of state (a fleet's figures follow)

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx_client(self.url)
        return self._http_client

    @property
    def ready(self) -> bool:
        return self.state is EngineState.READY

    def _set_state(self, state: EngineState) -> None:
        if state is not self.state:
            log.info("engine %s", state.value)
            self.state, self.state_since = state, time.monotonic()
            for hook in self.on_change:
                hook()

    async def _wait_ready(self, alive: Callable[[], bool]) -> None:
        """Probe until ready; TimeoutError past the start timeout, RuntimeError if the process dies first."""
        deadline = time.monotonic() + self.start_timeout_s
        reason = "not probed yet"
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the engine process exited before it was ready")
            try:
                self.max_model_len = await probe(self._http, http_base(self.url), self.api_key, self.served_model)
                return
            except NotReady as exc:
                reason = str(exc)
            await asyncio.sleep(PROBE_INTERVAL_S)
        raise TimeoutError(f"engine not ready after {self.start_timeout_s:.0f} s (last: {reason})")

    async def _healthy(self) -> bool:
        try:
            return (await self._http.get(f"{http_base(self.url)}/health", timeout=10.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()
