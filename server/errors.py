"""The error tree, and its one translation into OpenRouter's error body.

    MistralLocalError
    ├── ConfigError            bad settings, profile or model directory; the CLI prints it and exits 2
    ├── EngineFailed           the engine never became ready; the CLI prints the diagnosis and exits 3
    └── GatewayError           a request failed; rendered as {"error": {"code", "message", "metadata"}}
        ├── InvalidRequest     400
        │   └── InvalidImage   400  an image that cannot be fetched, read or accepted
        ├── Unauthorized       401
        ├── PaymentRequired    402  a key's token or cost budget is spent
        ├── Forbidden          403
        ├── NotFound           404
        ├── RequestTimeout     408
        ├── PayloadTooLarge    413
        ├── Overloaded         429  (Retry-After)
        ├── EngineError      502  the engine answered badly or dropped the connection
        └── EngineUnavailable  503  the engine is starting, restarting or draining (Retry-After)

Lower-level errors (httpx, validation, Starlette's HTTP errors) are translated into this tree at the boundary
where they occur; `install_error_handlers` renders the tree, so no response ever leaves in another shape. Each error
carries OpenRouter's `error_type` (2026): in `error.metadata` for chat and every other route, in `error` for the
Messages API, at the top level for the Responses API (the path says which: `shape_of`).
"""

from __future__ import annotations

import enum
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
    error_type = "server"  # OpenRouter's name for the kind of failure

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        retry_after: int | None = None,
        availability: dict[str, Any] | None = None,
        error_type: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.metadata = metadata
        self.retry_after = retry_after
        self.availability = availability  # OpenRouter's `error.availability`, when no engine can take the request
        self.error_type = error_type or type(self).error_type


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request"


class InvalidImage(InvalidRequest):
    error_type = "invalid_image"


class Unauthorized(GatewayError):
    status = 401
    error_type = "authentication"


class PaymentRequired(GatewayError):
    status = 402
    error_type = "payment_required"


class Forbidden(GatewayError):
    status = 403
    error_type = "permission_denied"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found"


class RequestTimeout(GatewayError):
    status = 408
    error_type = "timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "payload_too_large"


class Overloaded(GatewayError):
    status = 429
    error_type = "rate_limit_exceeded"


class EngineError(GatewayError):
    status = 502
    error_type = "provider_unavailable"


class EngineUnavailable(GatewayError):
    status = 503
    error_type = "provider_overloaded"


# Starlette's own HTTP errors (unknown route, wrong method) by status.
HTTP_ERROR_TYPES = {404: "not_found", 405: "invalid_request", 413: "payload_too_large"}


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
    error_type: str | None = None,
) -> GatewayError:
    """The error of the tree with this status: errors cross process boundaries as plain data (server/workers/)."""
    kind = next((c for c in GatewayError.__subclasses__() if c.status == status), GatewayError)
    return kind(message, metadata=metadata, retry_after=retry_after, availability=availability, error_type=error_type)


def error_fields(exc: GatewayError) -> dict[str, Any]:
    """`error_for_status`'s arguments for `exc`."""
    fields = {"status": exc.status, "message": exc.message, "metadata": exc.metadata, "retry_after": exc.retry_after}
    return fields | {"availability": exc.availability, "error_type": exc.error_type}


class ErrorShape(enum.Enum):
    """Where a route's errors say their `error_type`."""

    CHAT = "chat"  # error.metadata.error_type (OpenRouter's chat, and every route but the two below)
    MESSAGES = "messages"  # error.error_type
    RESPONSES = "responses"  # top-level error_type


def error_body(
    status: int,
    message: str,
    metadata: dict[str, Any] | None = None,
    availability: dict[str, Any] | None = None,
    error_type: str = "server",
    shape: ErrorShape = ErrorShape.CHAT,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if shape is ErrorShape.CHAT:
        error["metadata"] = (metadata or {}) | {"error_type": error_type}
    elif metadata:
        error["metadata"] = metadata
    if availability:
        error["availability"] = availability
    if shape is ErrorShape.MESSAGES:
        error["error_type"] = error_type
    return {"error": error} | ({"error_type": error_type} if shape is ErrorShape.RESPONSES else {})


def shape_of(path: str) -> ErrorShape:
    """The shape of the API a path belongs to (the guard answers before any route is matched)."""
    if path.endswith(("/messages", "/messages/count_tokens")):
        return ErrorShape.MESSAGES
    return ErrorShape.RESPONSES if path.endswith("/responses") else ErrorShape.CHAT


def error_response(exc: GatewayError, shape: ErrorShape = ErrorShape.CHAT) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    body = error_body(exc.status, exc.message, exc.metadata, exc.availability, exc.error_type, shape)
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"Invalid JSON in request body: {err.get('ctx', {}).get('error', 'malformed')}"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


async def _on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return error_response(exc, shape_of(request.url.path))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """The body as FastAPI checked it, or as a route checked what it made of it (another API's request, translated
    into a chat request: server/dialects/)."""
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(InvalidRequest(_validation_message(exc)), shape_of(request.url.path))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = HTTP_ERROR_TYPES.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "server")
    body = error_body(exc.status_code, str(exc.detail), error_type=kind, shape=shape_of(request.url.path))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse(error_body(500, "Internal server error", shape=shape_of(request.url.path)), status_code=500)


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
        error_type="context_length_exceeded",
    )


def rewrite_context_error(engine_message: str) -> InvalidRequest | None:
    """vLLM's context-length message in OpenRouter's wording; None for any other message."""
    if m := _VLLM_REQUESTED.search(engine_message):
        return context_error(int(m[1]), int(m[3]), int(m[2]))
    if m := _VLLM_PROMPT.search(engine_message):
        return context_error(int(m[1]), int(m[2]), 0)
    return None
