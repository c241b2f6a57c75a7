"""Running the gateway under uvicorn, with a graceful drain.

On SIGTERM (or the first Ctrl-C) the gateway drains: readiness turns 503 at once and new generations get 503 with
`Retry-After`, while those in flight finish, for up to `drain_timeout_s`. Then uvicorn stops and the lifespan
stops the engine. A second signal stops at once. With several workers the control process does the same for all of
them (server/workers/control.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from server.access.admission import Admission
from server.engine.protocol import ManagedEngine
from server.errors import ConfigError, EngineFailed
from server.gateway_state import Admits
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


def _family(host: str, port: int) -> socket.AddressFamily:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]


def check_port_free(host: str, port: int) -> None:
    """Fail before the engine loads, not after, when the address is taken or cannot be had."""
    try:
        with socket.socket(_family(host, port), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:  # taken, not this machine's address, or a name that does not resolve
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for a server started next: tests, benchmarks, qualification)."""
    with socket.socket(_family(host, 0), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket of one gateway worker: every worker binds the port with SO_REUSEPORT and the kernel
    spreads new connections over them."""
    return socket.create_server((host, port), family=_family(host, port), backlog=2048, reuse_port=True)


async def wait_drained(admission: Admits, timeout_s: float, stop_now: Callable[[], bool] = lambda: False) -> None:
    """Until nothing is in flight, `timeout_s` passes or `stop_now()`."""
    log.info("draining: %d request(s) in flight, up to %.0f s", admission.in_flight, timeout_s)
    deadline = time.monotonic() + timeout_s
    while admission.in_flight and time.monotonic() < deadline and not stop_now():  # noqa: ASYNC110 - a counter
        await asyncio.sleep(DRAIN_POLL_S)
    if admission.in_flight:
        log.warning("drain ended: stopping with %d request(s) in flight", admission.in_flight)


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
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(sig, frame))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def _drain(self, sig: int, frame: FrameType | None) -> None:
        await wait_drained(self.admission, self.drain_timeout_s)
        super().handle_exit(sig, frame)


async def run(app: FastAPI, settings: Settings, admission: Admission, engine: ManagedEngine) -> None:
    """Serve `app` until drained; EngineFailed when the engine never became ready. `admission` and `engine`: the
    app's own (the start-up built them and handed them to both), which the drain and the exit watch.

    httptools (uvicorn[standard]) by name, so a missing one fails the start instead of slowing every request; the
    event loop is uvloop's, from the caller (server/serve/start.py)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http="httptools",
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, admission, settings.drain_timeout_s)
    watch = asyncio.create_task(engine.failed.wait())
    watch.add_done_callback(lambda _: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        watch.cancel()
    raise_if_failed(engine)


def raise_if_failed(engine: ManagedEngine) -> None:
    if engine.failed.is_set():
        raise EngineFailed(engine.last_failure or "the engine never became ready")
