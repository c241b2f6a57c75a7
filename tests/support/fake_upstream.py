"""An OpenRouter stand-in on loopback (this machine has no internet) that records every request it receives.

The requested model picks the behaviour: `hosted/ok` answers (JSON or SSE), `hosted/busy` 429, `hosted/down` 503,
`hosted/missing` 404, `hosted/pay` 402, `hosted/slow` answers after SLOW_S, `hosted/anonymous` answers with no
generation id, `hosted/broken` streams two tokens and drops the connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from server.serving import free_port

SLOW_S = 3.0
PROVIDER = "HostedCo"
ERRORS = {
    "hosted/busy": (429, "Rate limit exceeded"),
    "hosted/down": (503, "No available providers"),
    "hosted/missing": (404, "No endpoints found"),
    "hosted/pay": (402, "Insufficient credits"),
}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "cost": 0.0042}


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Hosted:
    url: str
    received: list[Received] = field(default_factory=list)


def _chunk(gen_id: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": gen_id, "provider": PROVIDER, "model": model, "object": "chat.completion.chunk", "created": 1,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}],
    }  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _app(hosted: Hosted) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        hosted.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        model = body.get("model", "")
        if model in ERRORS:
            status, message = ERRORS[model]
            return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)
        if model == "hosted/slow":
            await asyncio.sleep(SLOW_S)
        gen_id = f"gen-hosted-{len(hosted.received)}-{int(time.time() * 1000)}"
        if not body.get("stream"):
            return JSONResponse({
                "id": "" if model == "hosted/anonymous" else gen_id,
                "provider": PROVIDER, "model": model, "object": "chat.completion", "created": 1,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from hosted"},
                             "finish_reason": "stop", "native_finish_reason": "stop"}],
                "usage": USAGE,
            })  # fmt: skip

        async def events() -> AsyncIterator[bytes]:
            yield b": OPENROUTER PROCESSING\n\n"
            for word in ("Hello", " from", " hosted"):
                yield _chunk(gen_id, model, {"role": "assistant", "content": word})
                await asyncio.sleep(0.01)
                if model == "hosted/broken" and word == " from":
                    raise ConnectionResetError("upstream went away")  # uvicorn drops the connection
            yield _chunk(gen_id, model, {"role": "assistant", "content": ""}, "stop")
            usage = {"id": gen_id, "provider": PROVIDER, "model": model, "choices": [], "usage": USAGE}
            yield b"data: " + json.dumps(usage).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@contextmanager
def serve_hosted() -> Iterator[Hosted]:
    port = free_port()
    hosted = Hosted(url=f"http://127.0.0.1:{port}/api/v1")
    server = uvicorn.Server(uvicorn.Config(_app(hosted), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the upstream stand-in did not start"
        time.sleep(0.02)
    try:
        yield hosted
    finally:
        server.should_exit = True
        thread.join(timeout=10)
