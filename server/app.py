"""`create_app(settings, engines, state)`: the FastAPI gateway in front of a fleet of engines (or one), where its
parts are built and wired (routes reach them through server/api/deps.py). The lifespan starts and stops the engines,
opens the generation records and owns the HTTP clients (one per engine, one for fetching remote images, one upstream)
and the generation path built on them.
`state` is the admission, records and metrics it shares with other gateway workers; by default its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI

from server import __version__
from server.access.auth import KeyRing, configured_keys
from server.access.body_limit import BodyLimit
from server.access.guard import Guard, allowed_hosts
from server.access.keys import KeyStore
from server.api import account, generate, keys, messages, models, ops, responses, tokenize, unsupported, usage
from server.api.deps import AppParts, Generation, require_key
from server.catalog import Catalog
from server.engine.protocol import Endpoint
from server.errors import install_error_handlers
from server.fleet.client import EngineClient, Sessions
from server.fleet.members import Fleet, fleet_of
from server.fleet.routing import Router
from server.gateway_state import GatewayState, local_state
from server.generation.dispatch import Dispatch
from server.generation.pipeline import Pipeline
from server.generation.recorder import Recorder
from server.generation.upstream import Upstream
from server.playground import routes as playground
from server.serving import is_loopback
from server.settings import Settings
from server.telemetry.request_log import RequestObserver
from server.telemetry.tracing import Tracing

API_ROUTERS = (
    generate.router,
    responses.router,
    messages.router,
    models.router,
    account.router,
    usage.router,
    keys.router,
    tokenize.router,
    unsupported.router,
)
# OpenRouter's base is /api/v1; plain OpenAI clients use /v1. Both serve the same routes.
API_PREFIXES = ("/api/v1", "/v1")


def keyring_for(settings: Settings, store: KeyStore) -> KeyRing:
    """The configured keys (environment, keys file), then those made through the API (`store`)."""
    return KeyRing(configured_keys(settings.api_keys, settings.keys_file), store.lookup, store.any())


def key_store(settings: Settings) -> KeyStore:
    return KeyStore(settings.keys_path)


def generation_path(
    gateway: AppParts,
    tracing: Tracing,
    sessions: Sessions,
    fetcher: httpx.AsyncClient,
    hosted: httpx.AsyncClient,
) -> Generation:
    """Front door, pipeline and engine client, on the lifespan's HTTP clients."""
    settings = gateway.settings
    router = Router(settings.routing)
    client = EngineClient(sessions, gateway.engine, router, settings.retry_after_s, tracing.tracer)
    recorder = Recorder(gateway.records, gateway.metrics)
    pipeline = Pipeline(settings, client, gateway.catalog, recorder, fetcher, gateway.admission, tracing.tracer)
    upstream = Upstream(settings, hosted) if settings.upstream_url and not settings.local_only else None
    dispatch = Dispatch(settings, pipeline, gateway.catalog, recorder, gateway.admission, upstream)
    return Generation(dispatch, pipeline, client)


def create_app(settings: Settings, engines: Fleet | Endpoint, state: GatewayState | None = None) -> FastAPI:
    engine = fleet_of(engines)
    state = state or local_state(settings, engine)
    store = key_store(settings)  # one SQLite connection for the process: the key ring reads it, /keys writes it
    gateway = AppParts(
        settings,
        engine,
        keyring_for(settings, store),
        store,
        state.admission,
        state.records,
        state.metrics,
        Catalog(settings, engine),
    )
    tracing = Tracing.start(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sessions = Sessions(engine, settings.engine_request_timeout_s)
        async with (
            # Remote images: no redirects followed by httpx (image_fetch checks every hop), no proxies from env.
            httpx.AsyncClient(timeout=settings.image_fetch_timeout_s, trust_env=False) as fetcher,
            # The hosted upstream is on the internet: the environment's proxy settings apply (a corporate proxy).
            httpx.AsyncClient(timeout=httpx.Timeout(settings.upstream_timeout_s, connect=10.0)) as hosted,
        ):
            gateway.generation = generation_path(gateway, tracing, sessions, fetcher, hosted)
            await state.records.open()
            await engine.start()
            try:
                yield
            finally:
                gateway.generation = None
                await engine.stop()
                await sessions.aclose()
                await state.records.close()
                tracing.shutdown()

    app = FastAPI(
        title="mistral-local",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        description="Mistral Small 3.1 on vLLM with OpenRouter's request and response shape.",
    )
    app.state.gateway = gateway
    _wire(app, gateway, tracing)
    return app


def _wire(app: FastAPI, gateway: AppParts, tracing: Tracing) -> None:
    """Metrics' live gauges, error handlers, middleware and routes."""
    settings, engine, admission = gateway.settings, gateway.engine, gateway.admission
    gateway.metrics.bind(
        in_flight=lambda: admission.in_flight,
        queue_depth=lambda: admission.waiting,
        engine_ready=lambda: float(engine.ready),
        engine_restarts=lambda: engine.restarts,
        engines=lambda: [m.describe() for m in engine.members],
    )
    install_error_handlers(app)
    # Outermost first: request ids and access log, then who may call (before the body is read), then body size.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    hosts = allowed_hosts(settings.allowed_hosts, settings.host, is_loopback(settings.host))
    app.add_middleware(Guard, keyring=gateway.keyring, public_routes=settings.public_routes, hosts=hosts)
    app.add_middleware(RequestObserver, metrics=gateway.metrics, tracing=tracing)
    app.include_router(ops.router)
    app.include_router(playground.router)
    for prefix in API_PREFIXES:
        for router in API_ROUTERS:
            app.include_router(router, prefix=prefix)

    # The OpenAPI document is served by a route of ours, behind the same key check as every other route.
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_key)])
    async def openapi() -> dict[str, Any]:
        return app.openapi()
