"""One generation on the local engine, from the front door (server/generation/dispatch.py) to the engine and back:
check and shape the request, admit it, make it fit the context, call the engine, shape the answer (JSON or SSE) and
record it (server/generation/recorder.py)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from fastapi.responses import Response
from opentelemetry.trace import StatusCode, Tracer

from server import sse
from server.access.auth import Principal
from server.catalog import Catalog
from server.errors import InvalidRequest, context_error
from server.fleet.client import EngineClient
from server.fleet.routing import LEADING_MESSAGES, Conversation
from server.gateway_state import Admits, Hold, released
from server.generation import plugins
from server.generation.compression import compress
from server.generation.demand import demand, prompt_estimate, prompt_upper_bound, typical_output
from server.generation.ids import cache_salt, new_generation_id
from server.generation.image_fetch import FetchPolicy
from server.generation.images import ImagePolicy, to_data_url
from server.generation.inbound import chat_payload, completion_payload, resolve_images, tokenize_payload
from server.generation.input_limits import InputLimits, check_chat, check_completion
from server.generation.outbound import Envelope, Pricing, chat_response, completion_response, forced_tools
from server.generation.outbound import usage as priced_usage
from server.generation.plugins.file_parser import PdfReader, ReaderLimits, documents, without_files
from server.generation.plugins.response_healing import heal
from server.generation.provider_prefs import check_provider
from server.generation.recorder import Call, Ending, Recorder, request_tags
from server.generation.stream import StreamOutcome, relay, shaper_for
from server.schemas.request import ChatRequest, CompletionRequest, TokenizeRequest
from server.settings import Settings
from server.telemetry.request_log import request_id

# Only with MISTRAL_LOCAL_LOG_CONTENT (debugging): the one logger that ever sees prompts and completions.
content_log = logging.getLogger("mistral_local.content")

DEFAULT_CONTEXT = 4096  # until the engine has said its own


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engine: EngineClient,
        catalog: Catalog,
        recorder: Recorder,
        fetcher: httpx.AsyncClient,
        admission: Admits,
        tracer: Tracer,
    ) -> None:
        self.settings = settings
        self.tracer = tracer  # OpenTelemetry's no-op tracer when tracing is off
        self.engine = engine
        self.catalog = catalog  # which id the engines serve a requested model as
        self.recorder = recorder
        self.fetcher = fetcher
        self.admission = admission
        profile_images = engine.fleet.images_per_prompt
        self.limits = InputLimits(
            max_messages=settings.max_messages,
            max_images=min(settings.max_images_per_request, profile_images or settings.max_images_per_request),
            max_output_tokens=settings.max_output_tokens,
            max_string_chars=settings.max_string_chars,
        )
        self.pdfs = PdfReader(
            ReaderLimits(
                max_files=settings.max_files_per_request,
                max_chars=settings.max_string_chars,
                max_images=self.limits.max_images,
                max_edge=settings.image_max_edge,
                timeout_s=settings.pdf_timeout_s,
                memory_bytes=settings.pdf_memory_mb << 20,
            ),
            readers=settings.pdf_readers,
            queue=settings.pdf_queue,
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

    @contextlib.contextmanager
    def _step(self, name: str, attributes: dict[str, int] | None = None) -> Iterator[None]:
        """A span for one step, current while it runs. A failure is marked by its type only: a message may quote
        the request (an image host, a document's name)."""
        with self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield
            except BaseException as exc:
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                raise

    async def _image(self, url: str, field: str) -> str:
        return await to_data_url(self.fetcher, url, field, self.images)

    async def chat(
        self, req: ChatRequest, principal: Principal, model: str, attempts: list[dict[str, Any]] | None = None
    ) -> Response:
        """`model`: the id to answer as; `attempts`: the request's earlier tries, recorded with this generation."""
        wanted = plugins.wanted(req)
        pdfs = documents(req, self.pdfs.limits) if wanted.files else None  # checked, counted; read once admitted
        call = self._start(req, principal, model)
        call.heal_json = wanted.heal_json
        call.attempts = attempts or []
        if self.settings.log_content:
            content_log.warning("CONTENT %s request: %s", call.env.id, req.model_dump_json(exclude_none=True))
        call.images = check_chat(req, self.limits)
        asked = without_files(req) if pdfs else req
        served = self.catalog.served_id(model)
        payload, images = chat_payload(asked, served, self.catalog.card(served))
        self._prepare(payload, principal)
        # Admitted before any PDF is read or image fetched or decoded: a key over its limits costs no work.
        ticket = await self._admit(principal, payload, pdfs.estimate(self.pdfs.limits) if pdfs else 0)
        with released(ticket, on_error_only=True):
            if pdfs:
                with self._step("file_parser"):
                    req = await self.pdfs.read(req, pdfs)
                call.images = check_chat(req, self.limits)
                payload, images = chat_payload(req, served, self.catalog.card(served))
                self._prepare(payload, principal)
            if images:
                with self._step("image_fetch", {"mistral_local.images": len(images)}):
                    await resolve_images(images, self._image)
            await self._fit(payload, middle_out=wanted.middle_out)
        return await self._generate(call, ticket, "/v1/chat/completions", payload, stream=req.stream)

    async def complete(self, req: CompletionRequest, principal: Principal, model: str) -> Response:
        call = self._start(req, principal, model)
        call.api_type = "text_completions"
        check_completion(req, self.limits)
        served = self.catalog.served_id(model)
        payload = completion_payload(req, served, self.catalog.card(served))
        self._prepare(payload, principal)
        ticket = await self._admit(principal, payload)
        return await self._generate(call, ticket, "/v1/completions", payload, stream=req.stream)

    async def tokenize(self, req: TokenizeRequest, principal: Principal) -> dict[str, Any]:
        """The engine's tokenizer, under the chat path's limits and image policy, admitted like a generation (it
        processes images), given only checked fields."""
        if req.messages is not None:
            check_chat(ChatRequest(messages=req.messages, tools=req.tools), self.limits)
        elif req.prompt is not None and len(req.prompt) > self.limits.max_string_chars:
            raise InvalidRequest(f"prompt: longer than {self.limits.max_string_chars} characters")
        payload, images = tokenize_payload(req, self.catalog.served_id(self.catalog.resolve(req.model)))
        with self._step("admission"):
            context = self.context(payload["model"])
            ticket = await self.admission.admit(principal, demand(payload | {"max_tokens": 1}, context, 0, 0))
        with released(ticket):
            await resolve_images(images, self._image)
            return await self.engine.post("/tokenize", payload)

    def _start(self, req: ChatRequest | CompletionRequest, principal: Principal, model: str) -> Call:
        if req.provider is not None:
            check_provider(req.provider, model, self.settings)
        env = Envelope(new_generation_id(), int(time.time()), model, self.settings.provider_name, self.pricing)
        if isinstance(req, ChatRequest):
            hints = {"session_id": req.session_id, "prompt_cache_key": req.prompt_cache_key, "user": req.user}
            talk = Conversation(principal.key_id, hints, req.messages[:LEADING_MESSAGES])
        else:
            talk = Conversation(principal.key_id, {"session_id": req.session_id, "user": req.user}, req.prompt)
        return Call(env, principal.label, request_tags(req), key_id=principal.key_id, conversation=talk)

    async def _generate(
        self, call: Call, ticket: Hold, path: str, payload: dict[str, Any], *, stream: bool
    ) -> Response:
        """Call the engine and answer as JSON or SSE; the admission ticket is always released."""
        if stream:
            return await self._stream(call, ticket, path, payload)
        with released(ticket):  # the record releases it first, with what was used
            raw = await self.engine.post(path, payload, self._engine_request_id(call), call.conversation)
            if call.api_type == "completions":  # chat
                return await self._json(call, ticket, chat_response(raw, call.env, forced_tools(payload)))
            return await self._json(call, ticket, completion_response(raw, call.env))

    def _prepare(self, payload: dict[str, Any], principal: Principal) -> None:
        """With a server-wide output cap, a request that names no limit gets the cap, not the whole context. Each
        key's prompts are cached apart (vLLM's cache_salt): a key cannot learn from timing what prompts another
        key sent. No keys, one tenant: one cache."""
        if self.settings.max_output_tokens is not None and "max_tokens" not in payload:
            payload["max_tokens"] = self.settings.max_output_tokens
        if principal.key_id is not None:
            payload["cache_salt"] = cache_salt(principal.key_id)

    def context(self, model: str) -> int:
        """The context of the engines serving `model` (the id they serve it as)."""
        return self.engine.fleet.contexts.get(model) or DEFAULT_CONTEXT

    async def _admit(self, principal: Principal, payload: dict[str, Any], files_tokens: int = 0) -> Hold:
        """`files_tokens`: what the request's PDFs may add to the prompt, before they are read."""
        pricing = self.pricing
        context = self.context(payload["model"])
        wanted = demand(payload, context, float(pricing.prompt), float(pricing.completion), files_tokens)
        with self._step("admission"):
            return await self.admission.admit(principal, wanted)

    async def _fit(self, payload: dict[str, Any], *, middle_out: bool) -> None:
        """Compress when asked (middle-out); otherwise refuse prompt + the payload's max_tokens (the request's, or
        the server's cap) over the context, which vLLM would silently clamp."""
        context = self.engine.fleet.contexts.get(payload["model"])
        if context is None:
            return
        limit = payload.get("max_tokens")
        if middle_out:
            budget = context - typical_output(limit, context)

            async def count(messages: list[dict[str, Any]]) -> int:
                return await self.engine.count_tokens({**payload, "messages": messages})

            payload["messages"], prompt = await compress(payload["messages"], budget, count)
            if prompt > budget:
                raise context_error(context, prompt, limit or 0)
        elif limit is not None and prompt_upper_bound(payload) + limit > context:
            prompt = await self.engine.count_tokens(payload)
            if prompt + limit > context:
                raise context_error(context, prompt, limit)

    async def _json(self, call: Call, ticket: Hold, body: dict[str, Any]) -> Response:
        choice = (body.get("choices") or [{}])[0]
        ending = Ending(body["usage"], finish=choice.get("finish_reason"), native=choice.get("native_finish_reason"))
        self.recorder.finish(call, ending, ticket)  # recorded and charged first, whatever healing does
        if call.heal_json:
            body = await heal(body)
        encoded = orjson.dumps(body)
        if self.settings.log_content:
            content_log.warning("CONTENT %s response: %s", call.env.id, encoded.decode())
        return Response(encoded, media_type="application/json", headers={"X-Generation-Id": call.env.id})

    @staticmethod
    def _engine_request_id(call: Call) -> str:
        """The engine logs the request under the client's request id with the generation's (vLLM wants ids unique,
        and a client may reuse its own)."""
        return f"{request_id.get()}.{call.env.id}"

    async def _stream(self, call: Call, ticket: Hold, path: str, payload: dict[str, Any]) -> Response:
        with released(ticket, on_error_only=True):  # errors before streaming keep their HTTP status
            response = await self.engine.stream(path, payload, self._engine_request_id(call), call.conversation)
        outcome = StreamOutcome()
        text_completion = call.api_type == "text_completions"
        fast, forced = self.settings.fast_path, forced_tools(payload)
        shaper = shaper_for(call.env, outcome, text_completion=text_completion, fast=fast, forced=forced)

        def finish() -> None:
            """Release, close and record, whether the stream ran, broke or never started (called once)."""
            # Unread to the end, the connection is dropped, so the engine stops generating.
            response.close(outcome.first_token_at, error=outcome.error is not None)
            ending = Ending(
                outcome.usage or self._usage_so_far(payload, outcome),
                outcome.first_token_at,
                streamed=True,
                cancelled=outcome.cancelled or (outcome.finish_reason is None and outcome.error is None),
                finish=outcome.finish_reason,
                native=outcome.native_finish_reason,
            )
            self.recorder.finish(call, ending, ticket)

        events = relay(response.reads(), shaper, self.settings.keepalive_interval_s)
        return sse.FinalizingStream(events, finish, {"X-Generation-Id": call.env.id})

    def _usage_so_far(self, payload: dict[str, Any], outcome: StreamOutcome) -> dict[str, Any]:
        """A stream that ended before vLLM's usage chunk (the client left, the engine broke) still cost its prompt
        and what was generated: the prompt's estimate and one token per output chunk (vLLM sends one per step)."""
        raw = {"prompt_tokens": prompt_estimate(payload), "completion_tokens": outcome.output_chunks}
        return priced_usage(raw, self.pricing)
