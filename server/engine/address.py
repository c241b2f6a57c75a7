"""Where the engine listens, and how the gateway's HTTP clients reach it there.

By default the engine listens on a Unix socket in a directory only the gateway's user can enter (mode 0700): vLLM's
API key does not cover all of its routes (`/invocations`, `/tokenize` answer without it), and a loopback port is
open to every local user, who could also take a port first and pose as the engine. An address is a URL: `unix:PATH`
for a socket, `http://HOST:PORT` for TCP (an engine elsewhere, or a port the operator fixed on purpose).
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import aiohttp
import httpx

UNIX = "unix:"
SOCKET_NAME = "engine.sock"
PRIVATE_PREFIX = "mistral-local-engine-"


def socket_path(url: str) -> Path | None:
    return Path(url.removeprefix(UNIX)) if url.startswith(UNIX) else None


def http_base(url: str) -> str:
    """The base of request URLs: over a socket the host part is only a name."""
    return "http://localhost" if url.startswith(UNIX) else url.rstrip("/")


def aiohttp_connector(url: str) -> aiohttp.BaseConnector:
    """No cap on connections (aiohttp's default of 100 would queue past it): admission bounds what is in flight."""
    path = socket_path(url)
    if path is not None:
        return aiohttp.UnixConnector(str(path), limit=0, keepalive_timeout=60)
    return aiohttp.TCPConnector(limit=0, keepalive_timeout=60)


def httpx_client(url: str) -> httpx.AsyncClient:
    """For probes and health checks; never through a proxy from the environment."""
    path = socket_path(url)
    transport = httpx.AsyncHTTPTransport(uds=str(path)) if path is not None else None
    return httpx.AsyncClient(transport=transport, trust_env=False)


def new_private_dir() -> Path:
    """A directory of an unguessable name for one engine's files, not made yet: the supervisor makes it (mode 0700,
    and as with mkdtemp it fails if anyone made that name first) when the engine starts, so a planned engine that
    never starts leaves nothing behind."""
    return Path(tempfile.gettempdir()) / f"{PRIVATE_PREFIX}{secrets.token_hex(8)}"


def private_socket() -> str:
    return UNIX + str(new_private_dir() / SOCKET_NAME)


def private_dir(url: str) -> Path | None:
    """The directory `private_socket` chose for `url`; None for any other address."""
    path = socket_path(url)
    return path.parent if path is not None and path.parent.name.startswith(PRIVATE_PREFIX) else None
