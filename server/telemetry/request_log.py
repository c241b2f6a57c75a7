"""Request ids, access logs and request metrics, in one ASGI layer (it wraps `send`, which every streamed chunk
passes through, so there is one such layer, not one per concern).

Every request gets an id (the client's `X-Request-Id` when it is sane, else a new one), echoed in the response and
attached to every log line written while handling it. One access line and one metrics sample per request: method,
route template, status, duration, key label. Never a body, a query string or a header value. With tracing on, the
request's span (server/telemetry/tracing.py) is opened here too, and is current while the request is handled.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import time

from opentelemetry.trace import Span, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.telemetry.metrics import Metrics
from server.telemetry.tracing import Tracing

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
key_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("key_label", default=None)

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
access = logging.getLogger("mistral_local.access")


class RequestContextFilter(logging.Filter):
    """Adds request_id and key to every record (None outside requests, unless the record names its own: an engine
    log line about a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        record.key = key_label.get()
        return True


_TRACE_HEADERS = (b"traceparent", b"tracestate")


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.tracing.enabled:
            await self._observe(scope, receive, send, None)
            return
        given = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS}
        with self.tracing.request(scope["method"], given) as span:
            await self._observe(scope, receive, send, span)

    async def _observe(self, scope: Scope, receive: Receive, send: Send, span: Span | None) -> None:
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        rid = given.decode() if _SANE_ID.match(given) else f"req-{secrets.token_hex(8)}"
        token = request_id.set(rid)
        status = 500
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            label = scope.get("state", {}).get("key_label")
            key_token = key_label.set(label)
            access.info("%s %s %d %.1fms", scope["method"], route, status, (time.monotonic() - started) * 1000)
            if span is not None:
                _describe(span, scope["method"], route, status, rid)
            self.metrics.request(route, status, label)
            key_label.reset(key_token)
            request_id.reset(token)


def _describe(span: Span, method: str, route: str, status: int, rid: str) -> None:
    span.update_name(f"{method} {route}")
    span.set_attributes(
        {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
            "mistral_local.request_id": rid,
        }
    )
    if status >= 500:
        span.set_status(StatusCode.ERROR)
