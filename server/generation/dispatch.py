"""The front door of every generation (`Dispatch`): chat and legacy completions enter here, and other APIs' requests
once translated to chat (server/dialects/). It applies the request's preset, answers from the response cache when
asked, and walks OpenRouter's `model` + `models` order: local first, then the hosted upstream when every privacy
rule allows it (server/generation/upstream.py `upstream_refusal`).

For each model in turn: the local engines (server/generation/pipeline.py) if one of the fleet's serves that model
and the `provider` preferences keep the local provider; then the upstream, if there is one. A local failure
OpenRouter would fall back on (engines down or restarting 503, admission 429, timeout 408, engine error 502, before
anything was streamed) moves on; any other error is the answer. When no attempt succeeds, the client gets the first
model's local error (or the last upstream error), so a refused upstream looks exactly like no upstream. Every
attempt is recorded with the generation that answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi.responses import JSONResponse, Response

from server.access.auth import Principal
from server.catalog import Catalog
from server.errors import GatewayError
from server.gateway_state import Admits
from server.generation.demand import request_demand
from server.generation.ids import new_generation_id
from server.generation.outbound import Envelope
from server.generation.pipeline import Pipeline
from server.generation.presets import PREFIX as PRESET_PREFIX
from server.generation.presets import apply as apply_preset
from server.generation.presets import presets_of, with_preset
from server.generation.recorder import Call, Ending, Recorder, attempt, request_tags
from server.generation.response_cache import Entry, ResponseCache, replay
from server.generation.response_cache import wish as cache_wish
from server.generation.upstream import Answer, PassThrough, Upstream, UpstreamFailed, upstream_refusal
from server.schemas.request import ChatRequest, CompletionRequest, SamplingFields
from server.settings import Settings

log = logging.getLogger("mistral_local")
LOCAL_FALLBACK_STATUSES = frozenset({404, 408, 429, 502, 503})


def falls_back(exc: GatewayError) -> bool:
    """Whether another provider may take a request the local engine could not serve. A key's own limits are the
    key's wherever it goes: its 429 is the answer."""
    key_limited = exc.metadata is not None and exc.metadata.get("limit_source") == "key"
    return exc.status in LOCAL_FALLBACK_STATUSES and not key_limited


def model_order(req: SamplingFields) -> list[str]:
    """OpenRouter tries `model`, then each of `models`, in that order."""
    return [m for m in [req.model, *(req.models or [])] if m is not None]


class Dispatch:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        catalog: Catalog,
        recorder: Recorder,
        admission: Admits,
        upstream: Upstream | None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.catalog = catalog
        self.recorder = recorder
        self.admission = admission
        self.upstream = upstream
        self.cache = ResponseCache(settings.response_cache_max_bytes) if settings.response_cache else None
        self.presets = presets_of(settings)

    async def complete(self, req: CompletionRequest, principal: Principal) -> Response:
        """Legacy text completions: the local engine only (OpenRouter's upstreams take chat)."""
        return await self.pipeline.complete(req, principal, self.catalog.first_served(model_order(req)))

    async def chat(
        self, req: ChatRequest, raw: dict[str, Any], headers: Mapping[str, str], principal: Principal
    ) -> Response:
        """`raw`: the client's own body, for a hosted upstream (its fields go there as they came). The answer comes
        from the response cache when the request asked for it and an identical one was stored. A request that names
        a preset gets the preset's settings first."""
        preset = None
        if PRESET_PREFIX in (req.model or "") or "preset" in (req.model_extra or {}):
            req, preset = apply_preset(req, self.presets)
        if preset is not None and raw:  # raw is {} unless a hosted upstream may take the request
            raw = with_preset(raw, preset, req.model)  # what the upstream gets carries the preset too
        use = None
        if self.cache is not None and (asked := cache_wish(headers, preset)) is not None:
            # The request encoded only when it asked: it holds the images (large).
            use = self.cache.use(asked, principal.key_id, req.model_dump_json(exclude_none=True).encode())
        if use is not None and use.found is not None:
            return self._cache_hit(use.found, req, principal)
        answer = await self._serve(req, raw, headers, principal)
        return self.cache.store(use, answer) if self.cache is not None and use is not None else answer

    def _cache_hit(self, entry: Entry, req: ChatRequest, principal: Principal) -> Response:
        """A stored answer again: a generation of its own, recorded at no cost."""
        env = Envelope(new_generation_id(), int(time.time()), entry.model, self.settings.provider_name)
        call = Call(env, principal.label, request_tags(req), cache_source_id=entry.source_id, key_id=principal.key_id)
        ending = Ending(None, streamed=entry.streamed, finish=entry.finish_reason, native=entry.finish_reason)
        self.recorder.finish(call, ending, engine=False)
        return replay(entry, env.id)

    async def _serve(
        self, req: ChatRequest, raw: dict[str, Any], headers: Mapping[str, str], principal: Principal
    ) -> Response:
        order = model_order(req)
        if len(order) < 2 and self.upstream is None:  # one model, local only: nowhere to fall back to
            return await self.pipeline.chat(req, principal, self.catalog.first_served(order))
        attempts: list[dict[str, Any]] = []
        first_error: GatewayError | None = None
        for i, model in enumerate(order):
            if self.catalog.serves(model):
                try:
                    return await self.pipeline.chat(req, principal, model, attempts)
                except GatewayError as exc:
                    attempts.append(attempt(model, self.settings.provider_name, exc.status))
                    first_error = first_error or exc
                    if not falls_back(exc):
                        raise
            if self.upstream is None:
                continue
            why = upstream_refusal(self.settings, req, principal, model)
            if why is not None:
                log.info("not sending %s upstream: %s", model, why)
                continue
            try:
                return await self._upstream(req, raw, headers, principal, model, attempts)
            except (UpstreamFailed, PassThrough) as exc:
                attempts.append(attempt(model, "upstream", exc.status))
                last = i == len(order) - 1
                passes = isinstance(exc, PassThrough) and (last or exc.status != 404)
                if passes or (last and first_error is None):
                    return JSONResponse(exc.body, status_code=exc.status)
        if first_error is not None:
            raise first_error
        return await self.pipeline.chat(req, principal, self.catalog.first_served(order))  # the local 400

    async def _upstream(
        self,
        req: ChatRequest,
        raw: dict[str, Any],
        headers: Mapping[str, str],
        principal: Principal,
        model: str,
        attempts: list[dict[str, Any]],
    ) -> Response:
        assert self.upstream is not None
        # The key's limits and budgets hold upstream too; the request takes no local capacity.
        wanted = request_demand(raw, req.max_tokens, self.pipeline.context(self.catalog.served_id(model)))
        ticket = await self.admission.admit(principal, wanted, capacity=False)
        body = {k: v for k, v in raw.items() if k != "models"} | {"model": model}
        env = Envelope("", 0, model, "upstream")
        call = Call(env, principal.label, request_tags(req), attempts=attempts, key_id=principal.key_id)

        def record(answer: Answer) -> None:
            """The generation as the upstream named it (an answer without an id gets one of ours, never a
            guessable one)."""
            gen_id = answer.id or new_generation_id()
            named = Envelope(gen_id, 0, answer.model or model, answer.provider or env.provider)
            ok = answer.error is None
            ending = Ending(
                answer.usage,
                answer.first_token_at,
                streamed=req.stream,
                cancelled=ok and answer.finish_reason is None and req.stream,
                finish=answer.finish_reason if ok else "error",
                native=answer.finish_reason,
                status=200 if ok else 502,
            )
            self.recorder.finish(replace(call, env=named), ending, ticket, engine=False)

        try:
            if req.stream:
                return await self.upstream.stream(body, headers, record)
            response, answer = await self.upstream.complete(body, headers)
        except BaseException:
            ticket.release()
            raise
        record(answer)
        return response
