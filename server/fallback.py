"""Where a chat request is served: OpenRouter's `model` + `models` order, local first, then the hosted upstream
when every privacy rule allows it.

For each model in turn: the local engine if it serves that model and the `provider` preferences keep the local
provider; then the upstream, only if the operator configured one and did not set local-only, the key is not
local-only (and is among the upstream's keys, when those are listed), the model is among the upstream's models,
and the request did not say `provider.allow_fallbacks: false`, `provider.data_collection: "deny"` or
`provider.zdr: true`. A local failure OpenRouter would fall back on (engine down or restarting 503, admission 429,
timeout 408, engine error 502, before anything was streamed) moves on; any other error is the answer. When no
attempt succeeds, the client gets the first model's local error (or the last upstream error), so a refused
upstream looks exactly like no upstream. Every attempt is recorded with the generation that answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse, Response

from server.auth import Principal
from server.catalog import Catalog
from server.errors import GatewayError
from server.gateway_state import Records
from server.pipeline import Pipeline
from server.presets import apply as apply_preset
from server.presets import presets_of
from server.prompt_size import request_demand
from server.records import GenerationRecord, request_tags
from server.response_cache import Entry, ResponseCache, replay
from server.schemas.request import ChatRequest
from server.settings import Settings
from server.shaping.outbound import new_generation_id
from server.upstream import Answer, PassThrough, Upstream, UpstreamFailed

log = logging.getLogger("mistral_local")
LOCAL_FALLBACK_STATUSES = frozenset({404, 408, 429, 502, 503})


def falls_back(exc: GatewayError) -> bool:
    """Whether another provider may take a request the local engine could not serve. A key's own limits are the
    key's wherever it goes: its 429 is the answer."""
    key_limited = exc.metadata is not None and exc.metadata.get("limit_source") == "key"
    return exc.status in LOCAL_FALLBACK_STATUSES and not key_limited


def upstream_refusal(settings: Settings, req: ChatRequest, principal: Principal, model: str) -> str | None:
    """Why this request may not leave the machine for `model` (None: it may)."""
    prefs = req.provider
    reasons = [
        (settings.upstream_url is None, "no upstream is configured"),
        (settings.local_only, "the server is local-only"),
        (principal.local_only, "the key is local-only"),
        (bool(settings.upstream_keys) and principal.label not in settings.upstream_keys, "the key may not use it"),
        ("*" not in settings.upstream_models and model not in settings.upstream_models, "the model is not allowed"),
        (prefs is not None and prefs.allow_fallbacks is False, "provider.allow_fallbacks is false"),
        (prefs is not None and prefs.data_collection == "deny", "provider.data_collection is deny"),
        (prefs is not None and prefs.zdr is True, "provider.zdr is true"),
    ]
    return next((why for refused, why in reasons if refused), None)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        catalog: Catalog,
        records: Records,
        upstream: Upstream | None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.catalog = catalog
        self.records = records
        self.upstream = upstream
        self.cache = ResponseCache(settings.response_cache_max_bytes) if settings.response_cache else None
        self.presets = presets_of(settings)

    async def chat(
        self, req: ChatRequest, raw: dict[str, Any], headers: Mapping[str, str], principal: Principal
    ) -> Response:
        """The answer, from the response cache when the request asked for it and an identical one was stored. A
        request that names a preset gets the preset's settings first."""
        req, preset = apply_preset(req, self.presets)
        if preset is not None and preset.cache_enabled:
            ttl = {"x-openrouter-cache-ttl": str(preset.cache_ttl_seconds)} if preset.cache_ttl_seconds else {}
            headers = {"x-openrouter-cache": "true", **ttl, **{k.lower(): v for k, v in headers.items()}}
        use = None
        if self.cache is not None:
            use = self.cache.use(headers, principal.label, lambda: req.model_dump_json(exclude_none=True).encode())
        if use is not None and use.found is not None:
            return self._cache_hit(use.found, req, principal)
        answer = await self._serve(req, raw, headers, principal)
        return self.cache.store(use, answer) if self.cache is not None and use is not None else answer

    def _cache_hit(self, entry: Entry, req: ChatRequest, principal: Principal) -> Response:
        """A stored answer again: a generation of its own, recorded at no cost."""
        gen_id = new_generation_id()
        self.records.add(
            GenerationRecord.ended_now(
                usage=None,
                started=time.monotonic(),
                first_token_at=None,
                attempts=[{"model": entry.model, "provider_name": self.settings.provider_name, "status": 200}],
                id=gen_id,
                model=entry.model,
                provider=self.settings.provider_name,
                api_type="completions",
                num_images=0,
                streamed=entry.streamed,
                cancelled=False,
                finish_reason=entry.finish_reason,
                native_finish_reason=entry.finish_reason,
                key_label=principal.label,
                cache_source_id=entry.source_id,
                **request_tags(req),
            )
        )
        return replay(entry, gen_id)

    async def _serve(
        self, req: ChatRequest, raw: dict[str, Any], headers: Mapping[str, str], principal: Principal
    ) -> Response:
        candidates = [m for m in [req.model, *(req.models or [])] if m is not None]
        if self.upstream is None or not candidates:  # local only: the pipeline applies OpenRouter's model order
            return await self.pipeline.chat(req, principal)
        attempts: list[dict[str, Any]] = []
        first_error: GatewayError | None = None
        for i, model in enumerate(candidates):
            last = i == len(candidates) - 1
            if self.catalog.serves(model):
                try:
                    one = req.model_copy(update={"model": model, "models": None})
                    return await self.pipeline.chat(one, principal, attempts)
                except GatewayError as exc:
                    attempts.append(
                        {"model": model, "provider_name": self.settings.provider_name, "status": exc.status}
                    )
                    first_error = first_error or exc
                    if not falls_back(exc):
                        raise
            why = upstream_refusal(self.settings, req, principal, model)
            if why is not None:
                log.info("not sending %s upstream: %s", model, why)
                continue
            try:
                return await self._upstream(req, raw, headers, principal, model, attempts)
            except UpstreamFailed as exc:
                attempts.append({"model": model, "provider_name": "upstream", "status": exc.status})
                if last and first_error is None:
                    return JSONResponse(exc.body, status_code=exc.status)
            except PassThrough as exc:
                attempts.append({"model": model, "provider_name": "upstream", "status": exc.status})
                if last or exc.status != 404:
                    return JSONResponse(exc.body, status_code=exc.status)
        if first_error is not None:
            raise first_error
        return await self.pipeline.chat(req, principal)  # nothing served or allowed: the local answer (404)

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
        wanted = request_demand(raw, req.output_limit, self.pipeline.context())
        ticket = await self.pipeline.admission.admit(principal, wanted, capacity=False)
        body = {k: v for k, v in raw.items() if k != "models"} | {"model": model}
        started = time.monotonic()

        tags = request_tags(req)

        def record(answer: Answer) -> None:
            used = self._record(answer, principal, model, attempts, started, tags, streamed=req.stream)
            ticket.release(used)

        try:
            if req.stream:
                return await self.upstream.stream(body, headers, record)
            response, answer = await self.upstream.complete(body, headers)
        except BaseException:
            ticket.release()
            raise
        record(answer)
        return response

    def _record(
        self,
        answer: Answer,
        principal: Principal,
        model: str,
        attempts: list[dict[str, Any]],
        started: float,
        tags: dict[str, str | None],
        *,
        streamed: bool,
    ) -> int | None:
        """Record the answer; the tokens it used, when the upstream said."""
        status = 200 if answer.error is None else 502
        provider = answer.provider or "upstream"
        record = GenerationRecord.ended_now(
            usage=answer.usage,
            started=started,
            first_token_at=answer.first_token_at,
            attempts=[*attempts, {"model": answer.model or model, "provider_name": provider, "status": status}],
            id=answer.id or new_generation_id(),  # never a guessable one
            model=answer.model or model,
            provider=provider,
            api_type="completions",
            num_images=0,
            streamed=streamed,
            cancelled=answer.finish_reason is None and answer.error is None and streamed,
            finish_reason=answer.finish_reason if answer.error is None else "error",
            native_finish_reason=answer.finish_reason,
            key_label=principal.label,
            **tags,
        )
        self.records.add(record)
        return record.prompt_tokens + record.completion_tokens if answer.usage else None
