"""What the pipeline keeps of one generation from request to record (`Call`), and the small rules it applies on the
way: each key's prefix-cache salt, an admission hold released whatever happens, and a failed engine call's span."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span, StatusCode

from server.gateway_state import Hold
from server.records import GenerationRecord
from server.shaping.outbound import Envelope


@dataclass
class Call:
    """One generation as the pipeline follows it, from request to record."""

    env: Envelope
    started: float
    api_type: str = "completions"  # OpenRouter's api_type: "completions" is chat, "text_completions" legacy
    images: int = 0
    key_label: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    span: Span | None = None  # the request's trace span, when tracing is on
    tags: dict[str, str | None] = field(default_factory=dict)  # records.request_tags
    heal_json: bool = False  # the response-healing plugin: make the answer valid JSON

    def record(
        self,
        usage: dict[str, Any] | None,
        first_token_at: float | None,
        streamed: bool,
        cancelled: bool,
        finish: str | None,
        native: str | None,
    ) -> GenerationRecord:
        """The generation's record as it ends now; this server's attempt last among the request's attempts."""
        return GenerationRecord.ended_now(
            usage=usage,
            started=self.started,
            first_token_at=first_token_at,
            attempts=[*self.attempts, {"model": self.env.model, "provider_name": self.env.provider, "status": 200}],
            id=self.env.id,
            model=self.env.model,
            provider=self.env.provider,
            api_type=self.api_type,
            num_images=self.images,
            streamed=streamed,
            cancelled=cancelled,
            finish_reason=finish,
            native_finish_reason=native,
            key_label=self.key_label,
            **self.tags,
        )


def cache_salt(label: str) -> str:
    """The key's own prefix-cache namespace. Not a secret: clients cannot set it (the engine payload is built from
    checked fields only), so knowing another key's salt gains nothing."""
    return hashlib.sha256(f"mistral-local key {label}".encode()).hexdigest()[:32]


def failed(span: Span | None, exc: BaseException) -> None:
    """The error's kind only: an engine's message may quote the request."""
    if span is not None:
        span.set_status(StatusCode.ERROR, type(exc).__name__)


@contextlib.contextmanager
def released(ticket: Hold, *, on_error_only: bool = False) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ticket.release()
        raise
    if not on_error_only:
        ticket.release()
