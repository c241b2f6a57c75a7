"""One generation, route to engine and back: resolve the model, shape the request, make it fit the context, call
the engine, shape the answer (JSON or SSE), and record its metadata. Routes call `chat` or `complete`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from fastapi.responses import Response, StreamingResponse

from server.catalog import Catalog
from server.context import compress, context_error
from server.engine.client import EngineClient
from server.images import ImagePolicy, to_data_url
from server.records import GenerationRecord, RecordStore
from server.schemas.request import ChatRequest, CompletionRequest, ImagePart, SamplingFields
from server.settings import Settings
from server.shaping.inbound import chat_payload, completion_payload
from server.shaping.outbound import Envelope, Pricing, chat_response, completion_response, new_generation_id
from server.sse import ChunkShaper, StreamOutcome, relay

# Without max_tokens, compression leaves this much room for the answer (at most a quarter of the context).
COMPRESSION_OUTPUT_RESERVE = 1024
# Upper bounds for the cheap pre-check: Tekken tokens are at least one byte; template tokens per message; one
# image at the model's maximum edge (1540 px: 55 rows of 55 tokens plus a break per row).
TEMPLATE_TOKENS_PER_MESSAGE = 8
MAX_IMAGE_TOKENS = 3080


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engine: EngineClient,
        catalog: Catalog,
        records: RecordStore,
        fetcher: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = catalog
        self.records = records
        self.fetcher = fetcher
        self.pricing = Pricing.from_strings(settings.price_prompt, settings.price_completion)
        self.images = ImagePolicy(
            max_bytes=settings.image_max_bytes,
            max_pixels=settings.image_max_pixels,
            max_edge=settings.image_max_edge,
            fetch_timeout_s=settings.image_fetch_timeout_s,
        )

    def _envelope(self, req: SamplingFields) -> Envelope:
        """OpenRouter tries `model`, then each of `models`; the first this server serves answers."""
        candidates = [m for m in [req.model, *(req.models or [])] if m is not None]
        served = next((m for m in candidates if self.catalog.serves(m)), None)
        model = self.catalog.resolve(served or (candidates[0] if candidates else None))
        return Envelope(new_generation_id(), int(time.time()), model, self.settings.provider_name, self.pricing)

    async def _image(self, url: str, field: str) -> str:
        return await to_data_url(self.fetcher, url, field, self.images)

    async def chat(self, req: ChatRequest, key_label: str | None) -> Response:
        started = time.monotonic()
        env = self._envelope(req)
        payload = await chat_payload(req, self.settings.model_id, self.settings.default_temperature, self._image)
        await self._fit(req, payload)
        images = sum(isinstance(p, ImagePart) for m in req.messages if isinstance(m.content, list) for p in m.content)
        meta = {"env": env, "started": started, "images": images, "key_label": key_label, "api_type": "completions"}
        if req.stream:
            return await self._stream("/v1/chat/completions", payload, text_completion=False, **meta)
        raw = await self.engine.post("/v1/chat/completions", payload)
        return self._json(chat_response(raw, env), **meta)

    async def complete(self, req: CompletionRequest, key_label: str | None) -> Response:
        started = time.monotonic()
        env = self._envelope(req)
        payload = completion_payload(req, self.settings.model_id, self.settings.default_temperature)
        meta = {"env": env, "started": started, "images": 0, "key_label": key_label, "api_type": "text_completions"}
        if req.stream:
            return await self._stream("/v1/completions", payload, text_completion=True, **meta)
        raw = await self.engine.post("/v1/completions", payload)
        return self._json(completion_response(raw, env), **meta)

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
        return Response(orjson.dumps(body), media_type="application/json", headers={"X-Generation-Id": env.id})

    async def _stream(self, path: str, payload: dict[str, Any], *, text_completion: bool, **meta: Any) -> Response:
        env: Envelope = meta["env"]
        response = await self.engine.stream(path, payload)  # errors before streaming keep their HTTP status
        outcome = StreamOutcome(started_at=meta["started"])
        shaper = ChunkShaper(env, outcome, text_completion)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for part in relay(response, shaper, self.settings.keepalive_interval_s):
                    yield part
            finally:
                self._record(
                    meta,
                    usage=outcome.usage,
                    first_token_at=outcome.first_token_at,
                    streamed=True,
                    cancelled=outcome.cancelled,
                    finish=outcome.finish_reason,
                    native=outcome.native_finish_reason,
                )

        headers = {"X-Generation-Id": env.id, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

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
                latency_ms=round((time.monotonic() - started) * 1000),
                ttft_ms=round((first_token_at - started) * 1000) if first_token_at is not None else None,
                streamed=streamed,
                cancelled=cancelled,
                finish_reason=finish,
                native_finish_reason=native,
                key_label=meta["key_label"],
            )
        )


def _prompt_upper_bound(payload: dict[str, Any]) -> int:
    total = 32 + len(orjson.dumps(payload.get("tools") or []))
    for message in payload["messages"]:
        total += TEMPLATE_TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                total += len(part["text"].encode()) if part["type"] == "text" else MAX_IMAGE_TOKENS
        for call in message.get("tool_calls") or []:
            total += len(orjson.dumps(call))
    return total
