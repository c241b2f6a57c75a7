"""The engine's output, copied into the gateway's log as it comes, and its last lines kept for a diagnosis.

It is read in pieces, not lines: asyncio's line reader raises on a line over 64 KiB, which used to end supervision.
A line longer than MAX_LOG_LINE is logged cut there and the rest of it dropped.

vLLM's line for each request it receives (--enable-log-requests) names the request and then its sampling
parameters, which hold request text (stop strings, JSON schemas, banned words): the parameters are cut, and the line
is logged under the gateway's request id (the engine's id is `chatcmpl-<request id>.<generation id>`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable

log = logging.getLogger("mistral_local.engine")

MAX_LOG_LINE = 8192
KEPT_LINES = 200
READ_BYTES = 65536
_RECEIVED = re.compile(r"Received request (\S+?): params: .*")
_GATEWAY_ID = re.compile(r"(?:chatcmpl-|cmpl-)?(\S+?)\.gen-")


class EngineOutput:
    def __init__(self, on_line: Callable[[str], None] = lambda _: None) -> None:
        self.recent: deque[str] = deque(maxlen=KEPT_LINES)
        self._on_line = on_line

    async def pump(self, stream: asyncio.StreamReader) -> None:
        """Until the stream closes. Never raises: a pump that stopped would leave the engine blocked on a full
        pipe."""
        pending, skipping = b"", False  # skipping: the rest of a line already logged (cut) is dropped
        while True:
            try:
                piece = await stream.read(READ_BYTES)
            except Exception:  # the pipe broke: nothing more will come
                log.exception("reading the engine's output failed")
                piece = b""
            if not piece:
                if not skipping:
                    self._line(pending)
                return
            *lines, pending = (pending + piece).split(b"\n")
            for line in lines:
                if not skipping:
                    self._line(line)
                skipping = False
            if len(pending) > MAX_LOG_LINE:
                if not skipping:
                    self._line(pending)
                pending, skipping = b"", True

    def _line(self, raw: bytes) -> None:
        line = raw[:MAX_LOG_LINE].decode(errors="replace").rstrip()
        if len(raw) > MAX_LOG_LINE:
            line += " … (line cut)"
        if not line:
            return
        received = _RECEIVED.search(line)
        rid = None
        if received is not None:
            engine_id = received.group(1)
            line = f"{line[: received.start()]}Received request {engine_id} (parameters not logged)"
            ours = _GATEWAY_ID.match(engine_id)
            rid = ours.group(1) if ours else None
        self.recent.append(line)
        self._on_line(line)
        log.info("[engine] %s", line, extra={"request_id": rid})
