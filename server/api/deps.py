"""Dependencies every route shares: the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.auth import ANONYMOUS, KeyRing, Principal


def is_public(request: Request, public_routes: tuple[str, ...]) -> bool:
    """`public_routes` entries are "PATH" (any method) or "METHOD PATH", matched against the route's template."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return path in public_routes or f"{request.method} {path}" in public_routes


async def require_key(request: Request) -> Principal:
    keyring: KeyRing = request.app.state.keyring
    if is_public(request, request.app.state.settings.public_routes) and not request.headers.get("authorization"):
        principal = ANONYMOUS
    else:
        principal = keyring.authenticate(request.headers.get("authorization"))
    request.state.key_label = principal.label
    return principal


KeyDep = Annotated[Principal, Depends(require_key)]
