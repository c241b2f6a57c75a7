"""One generation, route to engine and back: resolve the model, shape the request, make it fit the context, call
the engine, shape the answer (JSON or SSE), and record its metadata. Routes call `chat` or `complete`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import orjson
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from server.admission import Admission, Ticket
from server.auth import Principal
from server.catalog import Catalog
from server.context import compress, context_error
from server.engine.client import EngineClient
from server.errors import InvalidRequest
from server.image_fetch import FetchPolicy
from server.images import ImagePolicy, to_data_url
from server.limits import InputLimits, check_chat, check_output
from server.metrics import Metrics
from server.records import GenerationRecord, RecordStore
from server.schemas.request import ChatRequest, CompletionRequest, SamplingFields
from server.settings import Settings
from server.shaping.inbound import chat_payload, completion_payload
from server.shaping.outbound import Envelope, Pricing, chat_response, completion_response, new_generation_id
from server.sse import ChunkShaper, StreamOutcome, relay

# Only with MISTRAL_LOCAL_LOG_CONTENT (debugging): the one logger that ever sees prompts and completions.
content_log = logging.getLogger("mistral_local.content")

# Without max_tokens, compression leaves this much room for the answer (at most a quarter of the context).
COMPRESSION_OUTPUT_RESERVE = 1024
# Upper bounds for the cheap pre-check: Tekken tokens are at least one byte; template tokens per message; one
# image at the model's maximum edge (1540 px: 55 rows of 55 tokens plus a break per row).
TEMPLATE_TOKENS_PER_MESSAGE = 8
MAX_IMAGE_TOKENS = 3080
BYTES_PER_TOKEN = 4


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engine: EngineClient,
        catalog: Catalog,
        records: RecordStore,
        fetcher: httpx.AsyncClient,
        admission: Admission,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = catalog
        self.records = records
        self.fetcher = fetcher
        self.admission = admission
        self.metrics = metrics
        profile_images = engine.engine.images_per_prompt
        self.limits = InputLimits(
            max_messages=settings.max_messages,
            max_images=min(settings.max_images_per_request, profile_images or settings.max_images_per_request),
            max_output_tokens=settings.max_output_tokens,
            max_string_chars=settings.max_string_chars,
        )
        self.pricing = Pricing.from_strings(settings.price_prompt, settings.price_completion)
        self.images = ImagePolicy(
            max_bytes=settings.image_max_bytes,
            max_pixels=settings.image_max_pixels,
            max_edge=settings.image_max_edge,
            fetch=FetchPolicy(
                mode=settings.image_fetch_policy,
                allowlist=frozenset(h.lower() for h in settings.image_fetch_allowlist),
                max_bytes=settings.image_max_bytes,
                timeout_s=settings.image_fetch_timeout_s,
            ),
        )

    def _envelope(self, req: SamplingFields) -> Envelope:
        """OpenRouter tries `model`, then each of `models`; the first this server serves answers."""
        candidates = [m for m in [req.model, *(req.models or [])] if m is not None]
        served = next((m for m in candidates if self.catalog.serves(m)), None)
        model = self.catalog.resolve(served or (candidates[0] if candidates else None))
        return Envelope(new_generation_id(), int(time.time()), model, self.settings.provider_name, self.pricing)

    async def _image(self, url: str, field: str) -> str:
        return await to_data_url(self.fetcher, url, field, self.images)

    async def chat(self, req: ChatRequest, principal: Principal) -> Response:
        started = time.monotonic()
        env = self._envelope(req)
        if self.settings.log_content:
            content_log.warning("CONTENT %s request: %s", env.id, req.model_dump_json(exclude_none=True))
        images = check_chat(req, self.limits)
        payload = await chat_payload(req, self.settings.model_id, self.settings.default_temperature, self._image)
        self._cap_output(payload)
        await self._fit(req, payload)
        ticket = await self._admit(principal, payload)
        meta = {
            "env": env,
            "started": started,
            "images": images,
            "key_label": principal.label,
            "api_type": "completions",
            "ticket": ticket,
        }
        if req.stream:
            return await self._stream("/v1/chat/completions", payload, text_completion=False, **meta)
        with _released(ticket):
            raw = await self.engine.post("/v1/chat/completions", payload)
        return self._json(chat_response(raw, env), **meta)

    async def complete(self, req: CompletionRequest, principal: Principal) -> Response:
        started = time.monotonic()
        env = self._envelope(req)
        check_output(req, self.limits)
        payload = completion_payload(req, self.settings.model_id, self.settings.default_temperature)
        self._cap_output(payload)
        ticket = await self._admit(principal, payload)
        meta = {
            "env": env,
            "started": started,
            "images": 0,
            "key_label": principal.label,
            "api_type": "text_completions",
            "ticket": ticket,
        }
        if req.stream:
            return await self._stream("/v1/completions", payload, text_completion=True, **meta)
        with _released(ticket):
            raw = await self.engine.post("/v1/completions", payload)
        return self._json(completion_response(raw, env), **meta)

    def _cap_output(self, payload: dict[str, Any]) -> None:
        """With a server-wide output cap, a request that names no limit gets the cap, not the whole context."""
        if self.settings.max_output_tokens is not None and "max_tokens" not in payload:
            payload["max_tokens"] = self.settings.max_output_tokens

    async def _admit(self, principal: Principal, payload: dict[str, Any]) -> Ticket:
        engine = self.engine.engine
        output = payload.get("max_tokens") or min(COMPRESSION_OUTPUT_RESERVE, (engine.max_model_len or 4096) // 4)
        tokens, cost = self.records.spent(principal.label)
        return await self.admission.admit(
            principal,
            prompt_estimate(payload) + output,
            engine_state=engine.state.value,
            spent_tokens=tokens,
            spent_cost=cost,
        )

    async def _fit(self, req: ChatRequest, payload: dict[str, Any]) -> None:
        """Compress when asked (middle-out); otherwise refuse prompt + max_tokens over the context, which vLLM
        would silently clamp."""
        context = self.engine.engine.max_model_len
        if context is None:
            return
        limit = req.output_limit
        if "middle-out" in (req.transforms or []) or req.plugin_enabled("context-compression"):
            budget = context - (limit or min(COMPRESSION_OUTPUT_RESERVE, context // 4))

            async def count(messages: list[dict[str, Any]]) -> int:
                return await self.engine.count_tokens({**payload, "messages": messages})

            payload["messages"] = await compress(payload["messages"], budget, count)
            if (prompt := await count(payload["messages"])) > budget:
                raise context_error(context, prompt, limit or 0)
        elif limit is not None and _prompt_upper_bound(payload) + limit > context:
            prompt = await self.engine.count_tokens(payload)
            if prompt + limit > context:
                raise context_error(context, prompt, limit)

    def _json(self, body: dict[str, Any], **meta: Any) -> Response:
        choice = (body.get("choices") or [{}])[0]
        self._record(
            meta,
            usage=body["usage"],
            first_token_at=None,
            streamed=False,
            cancelled=False,
            finish=choice.get("finish_reason"),
            native=choice.get("native_finish_reason"),
        )
        env: Envelope = meta["env"]
        encoded = orjson.dumps(body)
        if self.settings.log_content:
            content_log.warning("CONTENT %s response: %s", env.id, encoded.decode())
        return Response(encoded, media_type="application/json", headers={"X-Generation-Id": env.id})

    async def _stream(self, path: str, payload: dict[str, Any], *, text_completion: bool, **meta: Any) -> Response:
        env: Envelope = meta["env"]
        ticket: Ticket = meta["ticket"]
        with _released(ticket, on_error_only=True):
            response = await self.engine.stream(path, payload)  # errors before streaming keep their HTTP status
        outcome = StreamOutcome(started_at=meta["started"])
        shaper = ChunkShaper(env, outcome, text_completion)
        finished = False

        async def finish() -> None:
            """Release, close and record exactly once, whether the stream ran, broke or never started."""
            nonlocal finished
            if finished:
                return
            finished = True
            ticket.release()
            # Shielded: in a cancelled task (the client left) anyio cancels every await, and an engine response
            # left open keeps the engine generating for nobody.
            with anyio.CancelScope(shield=True):
                await response.aclose()
            self._record(
                meta,
                usage=outcome.usage,
                first_token_at=outcome.first_token_at,
                streamed=True,
                cancelled=outcome.cancelled or (outcome.finish_reason is None and outcome.error is None),
                finish=outcome.finish_reason,
                native=outcome.native_finish_reason,
            )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for part in relay(response, shaper, self.settings.keepalive_interval_s):
                    yield part
            finally:
                await finish()

        headers = {"X-Generation-Id": env.id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return FinalizingStreamingResponse(body(), finish, media_type="text/event-stream", headers=headers)

    def _record(
        self,
        meta: dict[str, Any],
        *,
        usage: dict[str, Any] | None,
        first_token_at: float | None,
        streamed: bool,
        cancelled: bool,
        finish: str | None,
        native: str | None,
    ) -> None:
        env: Envelope = meta["env"]
        usage = usage or {}
        started: float = meta["started"]
        now = time.monotonic()
        self.metrics.generation(
            api=meta["api_type"],
            key=meta["key_label"],
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            latency_s=now - started,
            ttft_s=first_token_at - started if first_token_at is not None else None,
        )
        self.records.add(
            GenerationRecord(
                id=env.id,
                model=env.model,
                provider=env.provider,
                api_type=meta["api_type"],
                created_at=time.time(),
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
                num_images=meta["images"],
                cost=usage.get("cost", 0.0),
                latency_ms=round((now - started) * 1000),
                ttft_ms=round((first_token_at - started) * 1000) if first_token_at is not None else None,
                streamed=streamed,
                cancelled=cancelled,
                finish_reason=finish,
                native_finish_reason=native,
                key_label=meta["key_label"],
            )
        )


class FinalizingStreamingResponse(StreamingResponse):
    """A StreamingResponse that runs `finish` even when its body never started (the client left first)."""

    def __init__(self, content: AsyncIterator[bytes], finish: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._finish()


@contextlib.contextmanager
def _released(ticket: Ticket, *, on_error_only: bool = False) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ticket.release()
        raise
    if not on_error_only:
        ticket.release()


def _prompt_bytes(payload: dict[str, Any]) -> tuple[int, int]:
    """(UTF-8 bytes of text, including tools and template overhead; number of images) of an engine payload."""
    if "prompt" in payload:
        return _json_len(payload["prompt"]), 0
    total, images = 32 + _json_len(payload.get("tools") or []), 0
    for message in payload["messages"]:
        total += TEMPLATE_TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    total += len(part["text"].encode())
                else:
                    images += 1
        for call in message.get("tool_calls") or []:
            total += _json_len(call)
    return total, images


def _json_len(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:  # e.g. an integer past 64 bits in a tool's JSON schema
        raise InvalidRequest(f"The request cannot be encoded for the engine: {exc}") from exc


def _prompt_upper_bound(payload: dict[str, Any]) -> int:
    """Never below the real count: a Tekken token is at least one byte."""
    text, images = _prompt_bytes(payload)
    return text + images * MAX_IMAGE_TOKENS


def prompt_estimate(payload: dict[str, Any]) -> int:
    """A typical count for admission: about four bytes per token, images at their largest."""
    text, images = _prompt_bytes(payload)
    return text // BYTES_PER_TOKEN + images * MAX_IMAGE_TOKENS
