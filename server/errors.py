"""The error tree, and its one translation into OpenRouter's error body.

    MistralLocalError
    ├── ConfigError            bad settings, profile or model directory; the CLI prints it and exits 2
    ├── EngineFailed           the engine never became ready; the CLI prints the diagnosis and exits 3
    └── GatewayError           a request failed; rendered as {"error": {"code", "message", "metadata"?}}
        ├── InvalidRequest     400
        ├── Unauthorized       401
        ├── PaymentRequired    402  a key's token or cost budget is spent
        ├── Forbidden          403
        ├── NotFound           404
        ├── RequestTimeout     408
        ├── PayloadTooLarge    413
        ├── Overloaded         429  (Retry-After)
        ├── UpstreamError      502  the engine answered badly or dropped the connection
        └── EngineUnavailable  503  the engine is starting, restarting or draining (Retry-After)

Lower-level errors (httpx, validation, Starlette's HTTP errors) are translated into this tree at the boundary
where they occur; `install_error_handlers` renders the tree, so no response ever leaves in another shape.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class MistralLocalError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(MistralLocalError):
    """The operator's configuration cannot work; the message says what to change."""


class EngineFailed(MistralLocalError):
    """The engine could not be started; the message says why and what to change (server/engine/diagnosis.py)."""


class GatewayError(MistralLocalError):
    status = 500

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        retry_after: int | None = None,
        availability: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.metadata = metadata
        self.retry_after = retry_after
        self.availability = availability  # OpenRouter's `error.availability`, when no engine can take the request


class InvalidRequest(GatewayError):
    status = 400


class Unauthorized(GatewayError):
    status = 401


class PaymentRequired(GatewayError):
    status = 402


class Forbidden(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class RequestTimeout(GatewayError):
    status = 408


class PayloadTooLarge(GatewayError):
    status = 413


class Overloaded(GatewayError):
    status = 429


class UpstreamError(GatewayError):
    status = 502


class EngineUnavailable(GatewayError):
    status = 503


def availability(code: str, retry_after: int | None = None) -> dict[str, Any]:
    """OpenRouter's `error.availability`: `capacity_exhausted` (429, every engine full) or `temporarily_unavailable`
    (503, no engine ready; or a stream whose engine stopped: another may take it again at once)."""
    return {"code": code, "retryable": True, **({"retry_after": retry_after} if retry_after is not None else {})}


def error_for_status(
    status: int,
    message: str,
    *,
    metadata: dict[str, Any] | None = None,
    retry_after: int | None = None,
    availability: dict[str, Any] | None = None,
) -> GatewayError:
    """The error of the tree with this status: errors cross process boundaries as plain data (server/workers/)."""
    kind = next((c for c in GatewayError.__subclasses__() if c.status == status), GatewayError)
    return kind(message, metadata=metadata, retry_after=retry_after, availability=availability)


def error_fields(exc: GatewayError) -> dict[str, Any]:
    """`error_for_status`'s arguments for `exc`."""
    fields = {"status": exc.status, "message": exc.message, "metadata": exc.metadata, "retry_after": exc.retry_after}
    return fields | {"availability": exc.availability}


def error_body(
    status: int, message: str, metadata: dict[str, Any] | None = None, availability: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata:
        error["metadata"] = metadata
    if availability:
        error["availability"] = availability
    return {"error": error}


def error_response(exc: GatewayError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    body = error_body(exc.status, exc.message, exc.metadata, exc.availability)
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"Invalid JSON in request body: {err.get('ctx', {}).get('error', 'malformed')}"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


async def _on_gateway_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    """The body as FastAPI checked it, or as a route checked what it made of it (another API's request, translated
    into a chat request: server/dialects/)."""
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(InvalidRequest(_validation_message(exc)))


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = error_body(exc.status_code, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse(error_body(500, "Internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


# OpenRouter's wording when a request does not fit the served context, and vLLM's wording of it recognised.
_VLLM_PROMPT = re.compile(r"maximum context length is (\d+) tokens.*?prompt contains (\d+) input tokens", re.S)
_VLLM_REQUESTED = re.compile(
    r"maximum context length is (\d+) tokens.*?requested (\d+) output tokens.*?"
    r"prompt contains (?:at least )?(\d+) input tokens",
    re.S,
)


def context_error(context: int, prompt_tokens: int, output_tokens: int) -> InvalidRequest:
    total = prompt_tokens + output_tokens
    return InvalidRequest(
        f"This endpoint's maximum context length is {context} tokens. However, you requested about {total} tokens "
        f"({prompt_tokens} of text input, {output_tokens} in the output). Please reduce the length of either one, "
        "or use the context-compression plugin to compress your prompt automatically.",
        metadata={"provider_name": None},
    )


def rewrite_context_error(engine_message: str) -> InvalidRequest | None:
    """vLLM's context-length message in OpenRouter's wording; None for any other message."""
    if m := _VLLM_REQUESTED.search(engine_message):
        return context_error(int(m[1]), int(m[3]), int(m[2]))
    if m := _VLLM_PROMPT.search(engine_message):
        return context_error(int(m[1]), int(m[2]), 0)
    return None
