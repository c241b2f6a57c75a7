"""Dependencies every route shares: the caller's key, as the gateway's front door found it (server/guard.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.auth import Principal


async def require_key(request: Request) -> Principal:
    principal: Principal = request.state.principal  # set by server/guard.py, before the body was read
    return principal


KeyDep = Annotated[Principal, Depends(require_key)]
