"""An engine this gateway does not own (`serve --engine-url`): it waits for it to be ready, checks that its vLLM
release is one this gateway supports, and follows its health; restarts are someone else's."""

from __future__ import annotations

import asyncio
import logging

import httpx

from server.engine.address import http_base
from server.engine.lifecycle import MAX_FAILED_HEALTH_CHECKS, WATCH_INTERVAL_S, EngineLifecycle, EngineState
from server.engine.readiness import PROBE_TIMEOUT_S
from server.engine.vllm_release import supported
from server.errors import ConfigError
from server.tasks import cancel_and_wait

log = logging.getLogger("mistral_local.engine")


class AttachedEngine(EngineLifecycle):
    """An engine this gateway does not own: readiness means waiting for it, restarts are someone else's."""

    def __init__(self, url: str, api_key: str, served_model: str, *, start_timeout_s: float = 900.0) -> None:
        super().__init__(url.rstrip("/"), served_model, start_timeout_s)
        self.api_key = api_key

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="engine-follower")

    async def _follow(self) -> None:
        while True:
            self._set_state(EngineState.STARTING)
            try:
                await self._wait_ready(lambda: True)
                await self._check_release()
            except TimeoutError as exc:
                log.error("%s", exc)
                continue
            except ConfigError as exc:  # a vLLM this gateway does not support: say so and stop, as a launch would
                self.last_failure = str(exc)
                self._set_state(EngineState.FAILED)
                self.failed.set()
                return
            self._set_state(EngineState.READY)
            await self._watch()
            log.warning("attached engine at %s stopped answering", self.url)

    async def _watch(self) -> None:
        """Return after MAX_FAILED_HEALTH_CHECKS failed checks in a row, as for a launched engine: one failure
        alone can be the engine closing an idle connection just as it is reused (uvicorn's keep-alive is 5 s, the
        checks' interval too), and each return costs a readiness probe's generation."""
        failures = 0
        while failures < MAX_FAILED_HEALTH_CHECKS:
            await asyncio.sleep(WATCH_INTERVAL_S)
            failures = 0 if await self._healthy() else failures + 1

    async def _check_release(self) -> None:
        try:
            answer = await self._http.get(f"{http_base(self.url)}/version", timeout=PROBE_TIMEOUT_S)
            version = str(answer.json()["version"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"the engine at {self.url} does not say its vLLM version ({exc})") from exc
        supported(version, f"the engine at {self.url}")

    async def stop(self) -> None:
        self._set_state(EngineState.STOPPING)
        await cancel_and_wait(self._task)
        self._set_state(EngineState.STOPPED)
        await self.aclose()
