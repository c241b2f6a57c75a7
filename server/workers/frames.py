"""Messages between the control process and its workers: orjson objects, each behind its length (4 bytes), over a
Unix socket. Both ends are asyncio protocols that handle each message as it arrives, in order. A frame longer than
MAX_FRAME_BYTES (the largest real one, a generation record, is under a kilobyte) or one that does not parse closes
the connection: the other end is broken or not ours."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, cast

import orjson

_LENGTH = struct.Struct("!I")
MAX_FRAME_BYTES = 1 << 20
log = logging.getLogger("mistral_local.workers")


def frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return _LENGTH.pack(len(body)) + body


class FramedProtocol(asyncio.Protocol):
    """Splits the byte stream into messages for `received`; `send` writes one (nothing once the peer is gone)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            end = start + _LENGTH.size + length
            if length > MAX_FRAME_BYTES:
                self._refuse(f"a frame of {length} bytes")
                return
            if len(buffer) < end:
                break
            try:
                message = orjson.loads(buffer[start + _LENGTH.size : end])
            except orjson.JSONDecodeError:
                self._refuse("a frame that is not JSON")
                return
            self.received(message)
            start = end
        del buffer[:start]

    def _refuse(self, what: str) -> None:
        log.error("shared state: closing a connection that sent %s", what)
        self._buffer.clear()
        if self.transport is not None:
            self.transport.abort()

    def received(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(message))
