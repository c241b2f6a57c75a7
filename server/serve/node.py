"""`mistral-local engine`: one engine of a fleet on its own node, for a gateway elsewhere to attach to. The same
launch as `serve`'s (the profile's flags, no media fetched by the engine, nothing sent out) and the same supervision
(restarted when it dies), on a TCP address the gateway can reach, with a key of its own kept in a file (mode 0600)
so that it survives restarts. vLLM's key guards its /v1 routes only: keep the port on a private network."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

import uvloop
from pydantic import SecretStr
from rich.console import Console

from server.engine.launcher import new_api_key, tcp_url
from server.engine.supervisor import EngineSupervisor
from server.serve.engine_choice import local_engines
from server.serving import check_port_free, is_loopback, raise_if_failed
from server.settings import Settings
from server.telemetry.console import configure_logging


def engine_key(path: Path) -> str:
    """The key in `path`, or a new one written there only its owner can read."""
    with contextlib.suppress(FileNotFoundError):
        if key := path.read_text().strip():
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_api_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def reachable_url(host: str, port: int) -> str:
    """The address to give gateways: a wildcard address is this node's name."""
    return tcp_url(port, socket.gethostname() if host in ("0.0.0.0", "::") else host)


def run_node(settings: Settings, host: str, port: int, key_file: Path) -> None:
    """Run one engine until SIGTERM or Ctrl-C; EngineFailed if it never becomes ready."""
    configure_logging(settings.log_level, settings.log_format)
    check_port_free(host, port)
    settings = settings.model_copy(update={"engine_api_key": SecretStr(engine_key(key_file))})
    (engine,), settings = local_engines(settings, 1, tcp_url(port, host))
    console = Console(stderr=True)
    console.print(f"engine: {reachable_url(host, port)}  key: {key_file} (give both to the gateway's fleet file)")
    if is_loopback(host):
        console.print("[yellow]listening on loopback only: gateways on other nodes cannot reach it (--host)[/]")
    uvloop.run(_supervise(engine))
    raise_if_failed(engine)


async def _supervise(engine: EngineSupervisor) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(engine.failed.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await engine.stop()
