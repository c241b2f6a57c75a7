"""What `serve` writes: log lines (rich on a terminal, one JSON object per line otherwise or when asked), and a
live spinner while the engine loads."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import orjson
from rich.console import Console
from rich.logging import RichHandler
from rich.status import Status

from server.engine.protocol import Engine
from server.engine.supervisor import EngineState
from server.telemetry.request_log import RequestContextFilter

_LOADING = (EngineState.STARTING, EngineState.RESTARTING)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "key": getattr(record, "key", None),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """The message after its request id, when it has one (rich adds the time and level)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"[{rid}] {message}" if rid else message


def configure_logging(level: str, fmt: str = "auto") -> None:
    """fmt: "json", "text", or "auto" (rich text on a terminal, JSON otherwise)."""
    console = Console(stderr=True)
    handler: logging.Handler
    if fmt == "text" or (fmt == "auto" and console.is_terminal):
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(TextFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # httpx logs every request line at INFO; uvicorn's access log is replaced by server/telemetry/request_log.py's.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


async def show_engine_progress(engine: Engine) -> None:
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
