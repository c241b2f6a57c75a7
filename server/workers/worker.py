"""One gateway worker process, started by the control process (control.py) with `main`, which reads its
`WorkerSpec` (pickled) from stdin; PROMETHEUS_MULTIPROC_DIR comes in its environment.

A whole FastAPI gateway on the shared port, with the control process's admission, records and engine state. It
exits on SIGTERM (sent once the control process has drained every worker) and when the control process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import uvicorn
import uvloop

from server.app import create_app
from server.errors import GatewayError
from server.fleet.build import member_names
from server.gateway_state import GatewayState
from server.serving import shared_listener
from server.settings import Settings
from server.telemetry.console import configure_logging
from server.telemetry.metrics import Metrics
from server.workers.engine_view import view_fleet
from server.workers.state_client import SharedAdmission, SharedRecords, StateLink

log = logging.getLogger("mistral_local.workers")


@dataclass(frozen=True)
class WorkerSpec:
    settings: Settings
    index: int
    state_path: Path  # the control process's Unix socket
    metrics_dir: Path  # prometheus_client's multiprocess directory, shared by the workers


async def _exit_when_orphaned(link: StateLink, server: uvicorn.Server, index: int) -> None:
    await link.lost.wait()
    log.error("gateway worker %d: the control process is gone; exiting", index)
    server.should_exit = True


async def serve(spec: WorkerSpec) -> None:
    settings = spec.settings
    engine = view_fleet(member_names(settings))  # the control process says where each engine is
    try:
        link = await StateLink.connect(spec.state_path, engine, settings.retry_after_s)
    except (OSError, TimeoutError, GatewayError) as exc:  # the control process is gone or not answering
        log.error("gateway worker %d: no control process at %s (%s); exiting", spec.index, spec.state_path, exc)
        raise SystemExit(1) from None
    state = GatewayState(SharedAdmission(link), SharedRecords(link), Metrics(spec.metrics_dir))
    app = create_app(settings, engine, state)
    config = uvicorn.Config(app, http="httptools", log_config=None, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    orphaned = asyncio.create_task(_exit_when_orphaned(link, server, spec.index))
    try:
        await server.serve(sockets=[shared_listener(settings.host, settings.port)])
    finally:
        orphaned.cancel()


def main() -> None:
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)
    configure_logging(spec.settings.log_level, spec.settings.log_format)
    uvloop.run(serve(spec))
