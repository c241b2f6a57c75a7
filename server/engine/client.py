"""The gateway's one way to reach the engine over loopback. httpx errors and engine error bodies are translated
into the gateway's error tree here and nowhere else."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from server.context import rewrite_context_error
from server.engine.supervisor import EngineBase
from server.errors import (
    EngineUnavailable,
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UpstreamError,
)


class EngineClient:
    def __init__(self, http: httpx.AsyncClient, engine: EngineBase, retry_after_s: int) -> None:
        self.http = http
        self.engine = engine
        self.retry_after_s = retry_after_s

    def _check_ready(self) -> None:
        if not self.engine.ready:
            raise EngineUnavailable(f"Engine is {self.engine.state.value}", retry_after=self.retry_after_s)

    def _request(self, path: str, payload: dict[str, Any]) -> httpx.Request:
        self._check_ready()
        try:
            content = orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:  # e.g. an integer past 64 bits inside a tool's JSON schema
            raise InvalidRequest(f"The request cannot be encoded for the engine: {exc}") from exc
        return self.http.build_request(
            "POST",
            f"{self.engine.url}{path}",
            content=content,
            headers={"authorization": f"Bearer {self.engine.api_key}", "content-type": "application/json"},
        )

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        try:
            response = await self.http.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise RequestTimeout("Operation timed out. Please try again later.") from exc
        except httpx.ConnectError as exc:  # nothing listens: the engine is down or restarting
            raise EngineUnavailable("Engine is restarting", retry_after=self.retry_after_s) from exc
        except httpx.HTTPError as exc:  # the engine took the request and then failed it
            raise UpstreamError(f"Engine failed during the request ({type(exc).__name__})") from exc
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            raise engine_error(response.status_code, body)
        return response

    async def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = await self._send(self._request(path, payload), stream=False)
        try:
            data: dict[str, Any] = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("Engine returned invalid JSON") from exc
        return data

    async def stream(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        """An open 200 streaming response; errors the engine reports before streaming are raised here."""
        return await self._send(self._request(path, payload), stream=True)

    async def count_tokens(self, payload: dict[str, Any]) -> int:
        """Prompt tokens for a chat payload, counted by the engine's own tokenizer (images and tools included)."""
        keys = ("model", "messages", "tools", "add_generation_prompt", "continue_final_message")
        data = await self.post("/tokenize", {k: payload[k] for k in keys if k in payload})
        return int(data["count"])


def engine_message(body: bytes) -> str:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return body.decode(errors="replace")[:500]
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error)


def engine_error(status: int, body: bytes) -> GatewayError:
    """An engine error status as the gateway's error: the engine's message is kept where it helps the user."""
    message = engine_message(body)
    if status in (400, 422):
        return rewrite_context_error(message) or InvalidRequest(message or "Invalid request")
    if status == 401:
        return UpstreamError("Engine rejected the gateway's key")
    if status == 404:
        return InvalidRequest(message or "Not found")
    if status == 413:
        return PayloadTooLarge(message or "Payload too large")
    return UpstreamError(f"Engine error ({status}): {message}" if message else f"Engine error ({status})")
