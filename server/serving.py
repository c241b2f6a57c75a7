"""Running the gateway under uvicorn, with a graceful drain.

On SIGTERM (or the first Ctrl-C) the gateway drains: readiness turns 503 at once and new generations get 503 with
`Retry-After`, while those in flight finish, for up to `drain_timeout_s`. Then uvicorn stops and the lifespan
stops the engine. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from server.admission import Admission
from server.errors import ConfigError
from server.settings import Settings

log = logging.getLogger("mistral_local")
DRAIN_POLL_S = 0.1


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, keys_enabled: bool) -> None:
    """No keys on an address other machines can reach is refused, unless the operator insists."""
    if not keys_enabled and not is_loopback(settings.host) and not settings.insecure_no_auth:
        raise ConfigError(
            f"refusing to serve on {settings.host} without API keys: anyone who can reach it could use the model. "
            "Configure keys (--keys-file, see `mistral-local new-key`) or pass --insecure-no-auth."
        )


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, admission: Admission, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.admission = admission
        self.drain_timeout_s = drain_timeout_s
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.admission.draining:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self.admission.draining = True
        # Signal handlers run between bytecodes of whatever the loop was doing: hand over to the loop.
        self._loop.call_soon_threadsafe(self._start_drain, sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        log.info("draining: %d request(s) in flight, up to %.0f s", self.admission.in_flight, self.drain_timeout_s)
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(sig, frame))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def _drain(self, sig: int, frame: FrameType | None) -> None:
        deadline = time.monotonic() + self.drain_timeout_s
        while self.admission.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - a counter, no event
            await asyncio.sleep(DRAIN_POLL_S)
        if self.admission.in_flight:
            log.warning("drain timeout: stopping with %d request(s) in flight", self.admission.in_flight)
        super().handle_exit(sig, frame)


async def run(app: FastAPI, settings: Settings) -> None:
    # httptools (uvicorn[standard]) by name, so a missing one fails the start instead of slowing every request; the
    # event loop is uvloop's, from the caller (server/cli.py).
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http="httptools",
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    await DrainingServer(config, app.state.admission, settings.drain_timeout_s).serve()
