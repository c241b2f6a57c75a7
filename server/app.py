"""`create_app(settings, engine)`: the FastAPI gateway. The lifespan starts and stops the engine, opens the
generation records and owns the HTTP clients (one to the engine, one for fetching remote images)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from server import __version__
from server.api import account, generate, models, ops, tokenize
from server.body_limit import BodyLimit
from server.catalog import Catalog
from server.engine.client import EngineClient
from server.engine.supervisor import EngineBase
from server.errors import install_error_handlers
from server.pipeline import Pipeline
from server.records import RecordStore
from server.settings import Settings

API_ROUTERS = (generate.router, models.router, account.router, tokenize.router)
# OpenRouter's base is /api/v1; plain OpenAI clients use /v1. Both serve the same routes.
API_PREFIXES = ("/api/v1", "/v1")


def create_app(settings: Settings, engine: EngineBase) -> FastAPI:
    records = RecordStore(settings.records_path, settings.records_retention_days)
    catalog = Catalog(settings, lambda: engine.max_model_len)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        timeout = httpx.Timeout(settings.engine_request_timeout_s, connect=5.0)
        async with (
            httpx.AsyncClient(limits=limits, timeout=timeout) as http,
            httpx.AsyncClient(timeout=settings.image_fetch_timeout_s) as fetcher,
        ):
            client = EngineClient(http, engine, settings.retry_after_s)
            app.state.engine_client = client
            app.state.pipeline = Pipeline(settings, client, catalog, records, fetcher)
            await records.open()
            await engine.start()
            try:
                yield
            finally:
                await engine.stop()
                await records.close()

    app = FastAPI(
        title="mistral-local",
        version=__version__,
        lifespan=lifespan,
        description="Mistral Small 3.1 on vLLM with OpenRouter's request and response shape.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.catalog = catalog
    app.state.records = records
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(ops.router)
    for prefix in API_PREFIXES:
        for router in API_ROUTERS:
            app.include_router(router, prefix=prefix)
    return app
