"""`create_app(settings, engine)`: the FastAPI gateway. The lifespan starts and stops the engine and owns the
one HTTP client the gateway uses to reach it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from server import __version__
from server.api import ops, passthrough
from server.engine.supervisor import EngineBase
from server.errors import install_error_handlers
from server.settings import Settings


def create_app(settings: Settings, engine: EngineBase) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        timeout = httpx.Timeout(settings.engine_request_timeout_s, connect=5.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            app.state.http = http
            await engine.start()
            try:
                yield
            finally:
                await engine.stop()

    app = FastAPI(title="mistral-local", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(passthrough.router)
    return app
