"""What routes depend on, typed: the caller's key (as the front door found it, server/access/guard.py), the
gateway's shared parts (`Gateway`, built by create_app) and the generation path (`Generation`, built when the
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
class Gateway:
    settings: Settings
    engine: Fleet
    keyring: KeyRing
    key_store: KeyStore
    admission: Admits
    records: Records
    metrics: Metrics
    catalog: Catalog
    generation: Generation | None = None  # while the lifespan runs


def gateway_of(app: FastAPI) -> Gateway:
    gateway = app.state.gateway
    assert isinstance(gateway, Gateway), "built by server.app.create_app"
    return gateway


async def require_key(request: Request) -> Principal:
    principal: Principal = request.state.principal  # set by server/access/guard.py, before the body was read
    return principal


async def gateway(request: Request) -> Gateway:
    return gateway_of(request.app)


async def generation(request: Request) -> Generation:
    live = gateway_of(request.app).generation
    if live is None:  # a request before the lifespan started, or after it ended
        raise EngineUnavailable("The server is starting or stopping", retry_after=1)
    return live


KeyDep = Annotated[Principal, Depends(require_key)]
GatewayDep = Annotated[Gateway, Depends(gateway)]
GenerationDep = Annotated[Generation, Depends(generation)]
