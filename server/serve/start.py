"""`mistral-local serve`, from its flags to a running gateway: the settings (flags over environment over defaults),
logging, the exposure and port checks, the engine chosen for this machine, then one gateway process, or a control
process and its workers (server/workers/control.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import uvloop
from rich.console import Console
from rich.status import Status

from server.app import create_app, key_store, keyring_for
from server.checkpoint.identity import identity_overrides
from server.engine.lifecycle import EngineState
from server.engine.protocol import Engine
from server.gateway_state import local_state
from server.serve.engine_choice import build_fleet
from server.serving import check_exposure, check_port_free, run
from server.settings import Settings
from server.tasks import cancel_and_wait
from server.telemetry.console import configure_logging
from server.workers.control import run_control


def settings_from_flags(flags: dict[str, Any]) -> Settings:
    """The flags given over the environment (not given: None, False, or an empty repeated flag, which Typer hands
    over as `()`). Weights from `fetch-weights` say which model they are (3.1 or 3.2): served under that name unless
    the settings name one."""
    given = {k: v for k, v in flags.items() if v is not None and v is not False and v not in ([], ())}
    settings = Settings(**given)
    named = identity_overrides(settings.model, settings.model_fields_set)
    return Settings(**given, **named) if named else settings


def serve_from_flags(flags: dict[str, Any]) -> None:
    """Serve until stopped; ConfigError before anything started, EngineFailed when the engine never became ready."""
    settings = settings_from_flags(flags)
    configure_logging(settings.log_level, settings.log_format)
    if settings.log_content:
        logging.getLogger("mistral_local").warning(
            "CONTENT LOGGING IS ON (MISTRAL_LOCAL_LOG_CONTENT): prompts and completions are written to this log. "
            "Use it for debugging only; never in production."
        )
    check_exposure(settings, keyring_for(settings, key_store(settings)).enabled)
    check_port_free(settings.host, settings.port)
    engine, settings = build_fleet(settings)

    async def main() -> None:
        progress = asyncio.create_task(show_engine_progress(engine))
        try:
            if settings.workers == 1:  # one process: the app and the HTTP server share its state's parts
                state = local_state(settings, engine)
                await run(create_app(settings, engine, state), settings, state.admission, engine)
            else:
                await run_control(settings, engine)
        finally:
            await cancel_and_wait(progress)

    uvloop.run(main())  # uvloop's event loop: every streamed chunk costs less on it than on asyncio's


async def show_engine_progress(engine: Engine) -> None:
    """A spinner with the elapsed time and the engine's latest log line, until the engine is first ready."""
    console = Console(stderr=True)
    if not console.is_terminal:
        return
    started = time.monotonic()
    with Status("", console=console, spinner="dots") as status:
        while engine.state in (EngineState.STOPPED, EngineState.STARTING, EngineState.RESTARTING):
            line = engine.last_log_line[-80:]
            status.update(f"Loading engine ({time.monotonic() - started:.0f} s) {line}")
            await asyncio.sleep(0.25)
    if engine.ready:
        console.print(f"[green]Engine ready[/] in {time.monotonic() - started:.0f} s")
