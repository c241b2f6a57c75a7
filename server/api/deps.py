"""What routes depend on, typed: the caller's key (as the front door found it, server/access/guard.py), the
gateway's shared parts (`AppParts`, built by create_app) and the generation path (`Generation`, built when the
lifespan opens the HTTP clients)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from server.access.auth import KeyRing, Principal
from server.access.keys import KeyStore
from server.catalog import Catalog
from server.errors import EngineUnavailable
from server.fleet.client import EngineClient
from server.fleet.members import Fleet
from server.gateway_state import Admits, Records
from server.generation.dispatch import Dispatch
from server.generation.pipeline import Pipeline
from server.settings import Settings
from server.telemetry.metrics import Metrics


@dataclass(frozen=True)
class Generation:
    dispatch: Dispatch
    pipeline: Pipeline
    engine_client: EngineClient


@dataclass
class AppParts:
    """The gateway's parts, as routes get them (the state kept across requests among them: admission, records and
    metrics, server/gateway_state.py)."""

    settings: Settings
    engine: Fleet
    keyring: KeyRing
    key_store: KeyStore
    admission: Admits
    records: Records
    metrics: Metrics
    catalog: Catalog
    generation: Generation | None = None  # while the lifespan runs


def parts_of(app: FastAPI) -> AppParts:
    gateway = app.state.gateway
    assert isinstance(gateway, AppParts), "built by server.app.create_app"
    return gateway


async def require_key(request: Request) -> Principal:
    principal: Principal = request.state.principal  # set by server/access/guard.py, before the body was read
    return principal


async def parts(request: Request) -> AppParts:
    return parts_of(request.app)


async def generation(request: Request) -> Generation:
    live = parts_of(request.app).generation
    if live is None:  # a request before the lifespan started, or after it ended
        raise EngineUnavailable("The server is starting or stopping", retry_after=1)
    return live


KeyDep = Annotated[Principal, Depends(require_key)]
PartsDep = Annotated[AppParts, Depends(parts)]
GenerationDep = Annotated[Generation, Depends(generation)]
