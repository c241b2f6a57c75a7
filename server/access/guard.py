"""The front door: who may talk to the gateway, decided before a byte of the body is read.

1. The Host header must name this server. A web page the user visits can point a DNS name of its own at 127.0.0.1
   (DNS rebinding) and then call a loopback, keyless gateway from the user's browser; its requests carry that
   name as Host, so they are refused here.
2. The API key is checked from the headers alone. FastAPI parses a body before it runs dependencies, so a check
   there would let anyone who can reach the port make the gateway read and parse up to `max_body_bytes`.
   Requests without a key to a public route may send only a small body.

The principal found here is left in the request's state for the routes (`server/api/deps.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from server.access.auth import ANONYMOUS, KeyRing, Principal
from server.access.body_limit import BodyLimit
from server.errors import GatewayError, InvalidRequest, error_response, shape_of

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Public routes serve pages and listings: a request without a key has no reason to send more.
ANONYMOUS_BODY_BYTES = 64 * 1024


def allowed_hosts(configured: Iterable[str], bind_host: str, loopback: bool) -> frozenset[str]:
    """The Host names this server answers to. Unset: loopback names when it listens on loopback (where rebinding
    is the threat), any name otherwise (other machines reach it by names only the operator knows)."""
    names = {h.lower().strip("[]") for h in configured}
    if names:
        return frozenset(names)
    return frozenset({*LOOPBACK_NAMES, bind_host.lower().strip("[]")}) if loopback else frozenset({"*"})


def host_name(header: bytes) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    value = header.decode("latin-1").strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class PublicRoutes:
    """Operator-listed routes reachable without a key: "PATH" or "METHOD PATH", as route templates."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._routes: list[tuple[str | None, re.Pattern[str]]] = []
        for entry in entries:
            method, _, path = entry.rpartition(" ")
            self._routes.append((method.upper() or None, compile_path(path)[0]))

    def match(self, method: str, path: str) -> bool:
        return any((m is None or m == method) and rx.match(path) for m, rx in self._routes)


class Guard:
    def __init__(self, app: ASGIApp, *, keyring: KeyRing, public_routes: Iterable[str], hosts: frozenset[str]) -> None:
        self.app = app
        self.keyring = keyring
        self.public = PublicRoutes(public_routes)
        self.hosts = None if "*" in hosts else hosts
        self.anonymous_app = BodyLimit(app, ANONYMOUS_BODY_BYTES)

    def _principal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[Principal, bool]:
        """The caller, and whether it came in through a public route without a key."""
        if self.hosts is not None and host_name(headers.get(b"host", b"")) not in self.hosts:
            raise InvalidRequest("Invalid host header: this server does not answer to that name")
        authorization = headers.get(b"authorization")
        if authorization is None and (api_key := headers.get(b"x-api-key")):
            authorization = b"Bearer " + api_key  # how Anthropic's clients send the key
        if authorization is None and self.public.match(scope["method"], scope["path"]):
            return ANONYMOUS, self.keyring.enabled
        return self.keyring.authenticate(authorization.decode("latin-1") if authorization else None), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal, anonymous = self._principal(scope, dict(scope["headers"]))
        except GatewayError as exc:
            await error_response(exc, shape_of(scope["path"]))(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"], state["key_label"] = principal, principal.label
        await (self.anonymous_app if anonymous else self.app)(scope, receive, send)
