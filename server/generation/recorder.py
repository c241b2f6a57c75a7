"""Every generation's record and metrics, however it was answered (the local engine, the hosted upstream, the
response cache), written in one place: `Call` is what is known when it starts, `Ending` how it ended, and
`Recorder.finish` records it and releases its admission hold."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from server.fleet.routing import Conversation
from server.gateway_state import Hold, Records
from server.generation.outbound import Envelope
from server.schemas.record import GenerationRecord
from server.schemas.request import SamplingFields
from server.telemetry.metrics import Metrics
from server.telemetry.request_log import request_id
from server.telemetry.tracing import Tracing


def request_tags(req: SamplingFields) -> dict[str, str | None]:
    """A request's `user`, `session_id`, `prompt_cache_key` and preset, and its request id, as record fields."""
    return {
        "external_user": req.user,
        "session_id": req.session_id,
        "prompt_cache_key": getattr(req, "prompt_cache_key", None),  # chat only
        "request_id": request_id.get(),
        "preset_id": (req.model_extra or {}).get("preset"),  # set by server/generation/presets.py
    }


def attempt(model: str, provider: str, status: int) -> dict[str, Any]:
    """One try among a request's attempts, as the generation record lists them."""
    return {"model": model, "provider_name": provider, "status": status}


@dataclass
class Call:
    """One generation from request to record. `env` says which generation answers (id, model, provider)."""

    env: Envelope
    key_label: str | None
    tags: dict[str, str | None]
    started: float = field(default_factory=time.monotonic)
    api_type: str = "completions"  # OpenRouter's api_type: "completions" is chat, "text_completions" legacy
    images: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the request's earlier tries (dispatch.py)
    span: Span = field(default_factory=trace.get_current_span)  # the request's (a no-op one when tracing is off)
    heal_json: bool = False  # the response-healing plugin: make the answer valid JSON
    cache_source_id: str | None = None  # a response-cache hit: the generation it replays
    key_id: str | None = None  # the key's immutable id (server/access/auth.py Principal)
    conversation: Conversation | None = None  # which engine serves it (server/fleet/routing.py)


@dataclass(frozen=True)
class Ending:
    """How a generation ended: OpenRouter's `usage` (None: unknown), its first token, finish and this attempt's
    status among the request's attempts."""

    usage: dict[str, Any] | None
    first_token_at: float | None = None
    streamed: bool = False
    cancelled: bool = False
    finish: str | None = None
    native: str | None = None
    status: int = 200


class Recorder:
    def __init__(self, records: Records, metrics: Metrics) -> None:
        self.records = records
        self.metrics = metrics

    def finish(self, call: Call, ending: Ending, ticket: Hold | None = None, *, engine: bool = True) -> None:
        """Record the generation; `engine`: it ran on the local engine, so its tokens and timings are metrics. The
        hold is released after the record (the key's spending grows before its hold on the worst case ends), and
        released whatever happened to the record."""
        used: int | None = None
        try:
            record = self._record(call, ending)
            if engine:
                self.metrics.generation(
                    api=call.api_type,
                    key=call.key_label,
                    prompt_tokens=record.prompt_tokens,
                    completion_tokens=record.completion_tokens,
                    latency_s=time.monotonic() - call.started,
                    ttft_s=ending.first_token_at - call.started if ending.first_token_at is not None else None,
                )
            self.records.add(record)
            Tracing.generation(call.span, record)
            used = record.prompt_tokens + record.completion_tokens if ending.usage else None
        finally:
            if ticket is not None:
                ticket.release(used)

    @staticmethod
    def _record(call: Call, ending: Ending) -> GenerationRecord:
        """This attempt last among the request's attempts."""
        this = attempt(call.env.model, call.env.provider, ending.status)
        return GenerationRecord.ended_now(
            usage=ending.usage,
            started=call.started,
            first_token_at=ending.first_token_at,
            attempts=[*call.attempts, this],
            id=call.env.id,
            model=call.env.model,
            provider=call.env.provider,
            api_type=call.api_type,
            num_images=call.images,
            streamed=ending.streamed,
            cancelled=ending.cancelled,
            finish_reason=ending.finish,
            native_finish_reason=ending.native,
            key_label=call.key_label,
            key_id=call.key_id,
            cache_source_id=call.cache_source_id,
            **call.tags,
        )
