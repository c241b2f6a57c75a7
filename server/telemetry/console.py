"""What `serve` writes: log lines (rich on a terminal, one JSON object per line otherwise or when asked), and a
live spinner while the engine loads."""

from __future__ import annotations

import logging
import sys

import orjson
from rich.console import Console
from rich.logging import RichHandler

from server.telemetry.request_log import RequestContextFilter


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
