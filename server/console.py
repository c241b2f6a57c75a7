"""What `serve` shows on the terminal: log lines (rich when interactive, plain otherwise) and a live spinner
while the engine loads."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from rich.console import Console
from rich.logging import RichHandler
from rich.status import Status

from server.engine.supervisor import EngineBase, EngineState

_LOADING = (EngineState.STARTING, EngineState.RESTARTING)


def configure_logging(level: str) -> None:
    console = Console(stderr=True)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


async def show_engine_progress(engine: EngineBase) -> None:
    """A spinner with the elapsed time and the engine's latest log line, until the engine is first ready."""
    console = Console(stderr=True)
    if not console.is_terminal:
        return
    started = time.monotonic()
    with Status("", console=console, spinner="dots") as status:
        while engine.state in _LOADING or engine.state is EngineState.STOPPED:
            line = engine.last_log_line[-80:]
            status.update(f"Loading engine ({time.monotonic() - started:.0f} s) {line}")
            await asyncio.sleep(0.25)
    if engine.ready:
        console.print(f"[green]Engine ready[/] in {time.monotonic() - started:.0f} s")
