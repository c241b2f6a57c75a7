"""A gateway app (`create_app`) under a real uvicorn server in a thread, for tests that speak raw HTTP to it. Its
engine is nowhere (an attached engine on a port where nothing listens) unless the test gives one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from server.app import create_app
from server.engine.attached import AttachedEngine
from server.engine.protocol import Endpoint
from server.serving import free_port
from server.settings import Settings
from tests.support.scratch import scratch_dir


def nowhere_engine(settings: Settings) -> AttachedEngine:
    return AttachedEngine(f"http://127.0.0.1:{free_port()}", "key", settings.model_id, start_timeout_s=60)


def gateway_settings(**overrides: Any) -> Settings:
    return Settings(**{"cache_dir": scratch_dir("gw-")} | overrides)


@contextmanager
def served_app(settings: Settings, engine: Endpoint | None = None) -> Iterator[str]:
    """The app's base URL while it serves on a free loopback port."""
    port = free_port()
    app = create_app(settings, engine or nowhere_engine(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the test gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
