"""Messages between the control process and its workers: orjson objects, each behind its length (4 bytes), over a
Unix socket. Both ends are asyncio protocols that handle each message as it arrives, in order."""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import orjson

_LENGTH = struct.Struct("!I")


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
            if len(buffer) < end:
                break
            self.received(orjson.loads(buffer[start + _LENGTH.size : end]))
            start = end
        del buffer[:start]

    def received(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(message))
