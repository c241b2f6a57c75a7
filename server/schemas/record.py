"""A generation's record: its metadata (ids, model, tokens, cost, timings, outcome), never the prompt or the
completion. Written by server/generation/recorder.py, kept by server/record_store.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class GenerationRecord:
    id: str
    model: str
    provider: str
    api_type: str  # "completions" (chat) or "text_completions"
    created_at: float  # unix seconds
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    num_images: int
    cost: float
    latency_ms: int  # request received -> last byte
    ttft_ms: int | None  # request received -> first token
    streamed: bool
    cancelled: bool
    finish_reason: str | None
    native_finish_reason: str | None
    key_label: str | None
    # Every attempt of the request, in order, as JSON (OpenRouter's provider_responses): model, provider, status.
    attempts: str = "[]"
    # Who and what the client said the request belongs to (OpenRouter's `user`, `session_id`, `prompt_cache_key`),
    # and the request's id (X-Request-Id, in the logs and traces): to group generations, never to route them.
    external_user: str | None = None
    session_id: str | None = None
    prompt_cache_key: str | None = None
    request_id: str | None = None
    cache_source_id: str | None = None  # a response-cache hit: the generation whose answer it replayed
    preset_id: str | None = None  # the preset the request named
    key_id: str | None = None  # the key's immutable id (key_label is its name then, for display)

    def __post_init__(self) -> None:
        """Budgets are sums of these: a record that cannot be real (negative, or not numbers) is refused."""
        counts = (self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.num_images, self.latency_ms)
        if not all(isinstance(n, int) and n >= 0 for n in counts):
            raise ValueError(f"generation {self.id}: token, image and latency counts must be whole and >= 0")
        if not isinstance(self.cost, int | float) or not self.cost >= 0:  # `not >=` also refuses NaN
            raise ValueError(f"generation {self.id}: cost must be a number >= 0")

    @classmethod
    def ended_now(
        cls,
        *,
        usage: dict[str, Any] | None,
        started: float,
        first_token_at: float | None,
        attempts: list[dict[str, Any]],
        **rest: Any,
    ) -> GenerationRecord:
        """The record of a generation that ends now: tokens and cost from its OpenRouter `usage`, timings from
        `time.monotonic()` marks, `rest` the other fields. Local and hosted answers are recorded through this."""
        usage = usage or {}
        return cls(
            created_at=time.time(),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            cost=float(usage.get("cost") or 0.0),
            latency_ms=round((time.monotonic() - started) * 1000),
            ttft_ms=round((first_token_at - started) * 1000) if first_token_at is not None else None,
            attempts=orjson.dumps(attempts).decode(),
            **rest,
        )
