"""`create_app(settings, engine, state)`: the FastAPI gateway. The lifespan starts and stops the engine, opens the
generation records and owns the HTTP clients (one to the engine, one for fetching remote images, one upstream).
`state` is the admission, records and metrics it shares with other gateway workers; by default its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI

from server import __version__
from server.api import account, generate, keys, messages, models, ops, responses, tokenize, unsupported, usage
from server.api.deps import require_key
from server.auth import KeyRing, load_keys_file
from server.body_limit import BodyLimit
from server.catalog import Catalog
from server.engine.client import EngineClient, engine_session
from server.engine.supervisor import EngineBase
from server.errors import install_error_handlers
from server.fallback import Dispatcher
from server.gateway_state import GatewayState, local_state
from server.guard import Guard, allowed_hosts
from server.keys_store import KeyStore
from server.pipeline import Pipeline
from server.playground import routes as playground
from server.request_log import RequestObserver
from server.serving import is_loopback
from server.settings import Settings
from server.tracing import Tracing
from server.upstream import Upstream

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


def keyring_for(settings: Settings) -> KeyRing:
    """The configured keys (environment, keys file), then those made through the API."""
    keys = list(settings.api_keys)
    if settings.keys_file is not None:
        keys += load_keys_file(settings.keys_file)
    store = key_store(settings)
    return KeyRing(keys, store.lookup, store.any())


def key_store(settings: Settings) -> KeyStore:
    return KeyStore(settings.keys_path, settings.records_path)


def create_app(settings: Settings, engine: EngineBase, state: GatewayState | None = None) -> FastAPI:
    state = state or local_state(settings, engine)
    admission, records, metrics = state.admission, state.records, state.metrics
    catalog = Catalog(settings, lambda: engine.max_model_len)
    tracing = Tracing.start(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            engine_session(settings.engine_request_timeout_s, engine.url) as http,
            # Remote images: no redirects followed by httpx (image_fetch checks every hop), no proxies from env.
            httpx.AsyncClient(timeout=settings.image_fetch_timeout_s, trust_env=False) as fetcher,
            # The hosted upstream is on the internet: the environment's proxy settings apply (a corporate proxy).
            httpx.AsyncClient(timeout=httpx.Timeout(settings.upstream_timeout_s, connect=10.0)) as hosted,
        ):
            client = EngineClient(http, engine, settings.retry_after_s)
            app.state.engine_client = client
            pipeline = Pipeline(settings, client, catalog, records, fetcher, admission, metrics, tracing)
            app.state.pipeline = pipeline
            upstream = Upstream(settings, hosted) if settings.upstream_url and not settings.local_only else None
            app.state.dispatcher = Dispatcher(settings, pipeline, catalog, records, upstream)
            await records.open()
            await engine.start()
            try:
                yield
            finally:
                await engine.stop()
                await records.close()
                tracing.shutdown()

    # The OpenAPI document is served by a route of ours, behind the same key check as every other route.
    app = FastAPI(
        title="mistral-local",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        description="Mistral Small 3.1 on vLLM with OpenRouter's request and response shape.",
    )
    app.state.settings = settings
    app.state.keyring = keyring_for(settings)
    app.state.key_store = key_store(settings)
    app.state.admission = admission
    app.state.metrics = metrics
    app.state.engine = engine
    app.state.catalog = catalog
    app.state.records = records
    metrics.bind(
        in_flight=lambda: admission.in_flight,
        queue_depth=lambda: admission.waiting,
        engine_ready=lambda: float(engine.ready),
        engine_restarts=lambda: engine.restarts,
    )
    install_error_handlers(app)
    # Outermost first: request ids and access log, then who may call (before the body is read), then body size.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    hosts = allowed_hosts(settings.allowed_hosts, settings.host, is_loopback(settings.host))
    app.add_middleware(Guard, keyring=app.state.keyring, public_routes=settings.public_routes, hosts=hosts)
    app.add_middleware(RequestObserver, metrics=metrics, tracing=tracing)
    app.include_router(ops.router)
    app.include_router(playground.router)
    for prefix in API_PREFIXES:
        for router in API_ROUTERS:
            app.include_router(router, prefix=prefix)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_key)])
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    return app
