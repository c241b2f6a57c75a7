"""`/v1/*` relayed to the engine as it is, so OpenAI clients work end to end. The engine's key replaces the
client's; bodies stream both ways without buffering; a client that disconnects closes the engine request,
which makes vLLM abort the generation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from server.errors import EngineUnavailable, UpstreamError

router = APIRouter(tags=["openai"])

# Hop-by-hop and recomputed headers are not forwarded.
_DROP_REQUEST_HEADERS = {"host", "authorization", "content-length", "connection", "accept-encoding"}
_DROP_RESPONSE_HEADERS = {"content-length", "connection", "transfer-encoding", "content-encoding", "server", "date"}


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


@router.api_route("/v1/{path:path}", methods=["GET", "POST"], include_in_schema=False)
async def passthrough(path: str, request: Request) -> StreamingResponse:
    engine = request.app.state.engine
    if not engine.ready:
        raise EngineUnavailable(f"Engine is {engine.state.value}", retry_after=request.app.state.settings.retry_after_s)
    client: httpx.AsyncClient = request.app.state.http
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST_HEADERS}
    headers["authorization"] = f"Bearer {engine.api_key}"
    upstream = client.build_request(
        request.method,
        f"{engine.url}/v1/{path}",
        params=request.query_params,
        headers=headers,
        content=await request.body(),
    )
    try:
        response = await client.send(upstream, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamError("Engine timed out") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"Engine unreachable: {type(exc).__name__}") from exc
    out_headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE_HEADERS}
    return StreamingResponse(_relay(response), status_code=response.status_code, headers=out_headers)
