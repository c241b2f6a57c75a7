"""OpenTelemetry traces over OTLP: one trace per request, from the gateway into the engine.

Off unless a collector is configured (settings.otlp_endpoint); off, the path's spans come from OpenTelemetry's no-op
tracer (nothing is recorded) and nothing of OpenTelemetry's SDK is imported. The generation path uses OpenTelemetry's
API directly (`Tracing.tracer`); the engine call's span is the engine client's (server/fleet/client.py). On, each
process (the gateway, each gateway worker) exports its own spans, the launched engine is
started with vLLM's own OTLP export to the same collector, and the engine call carries W3C trace context
(`traceparent`), so vLLM's `llm_request` span joins the gateway's trace. A client's `traceparent` is not adopted (a
client could then pick trace ids or switch its own requests' tracing off): each request starts a new trace whose root
links to the client's span.

Spans carry timings, token counts, ids and outcomes: never prompt or completion text (attributes come from the
generation record, which holds none), nor an error's message (it may quote the request): a failed step says the
error's type only (server/generation/pipeline.py `Pipeline._step`, server/fleet/client.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from server.schemas.record import GenerationRecord
    from server.settings import Settings

_TRACE_CONTEXT = TraceContextTextMapPropagator()  # W3C `traceparent`, from clients


def traces_endpoint(settings: Settings) -> str | None:
    """The collector's address for traces. Over HTTP, a bare collector address (http://host:4318, as in
    OTEL_EXPORTER_OTLP_ENDPOINT) gets OTLP's /v1/traces path; a URL with a path is used as it is."""
    url = settings.otlp_endpoint
    if url is None or settings.otlp_protocol != "http/protobuf":
        return url
    return url.rstrip("/") + "/v1/traces" if urlsplit(url).path in ("", "/") else url


def engine_flags(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """vLLM's own OTLP export to the same collector: its flags and environment (vLLM defaults to gRPC)."""
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return [], {}
    env = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": settings.otlp_protocol, "OTEL_SERVICE_NAME": engine_service(settings)}
    return ["--otlp-traces-endpoint", endpoint], env


def engine_service(settings: Settings) -> str:
    return f"{settings.otel_service_name}-engine"


def _exporter(settings: Settings, endpoint: str) -> Any:
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=endpoint)


class Tracing:
    """This process's tracer, or none: then spans are OpenTelemetry's no-op ones."""

    def __init__(self, tracer: Tracer | None = None, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self.tracer: Tracer = tracer or trace.NoOpTracer()

    @classmethod
    def start(cls, settings: Settings) -> Tracing:
        endpoint = traces_endpoint(settings)
        if endpoint is None:
            return cls()
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The pid tells gateway workers apart.
        resource = Resource.create({"service.name": settings.otel_service_name, "process.pid": os.getpid()})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings, endpoint)))
        return cls(provider.get_tracer("mistral_local"), provider)

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def shutdown(self) -> None:
        """Export what is left (the processor's queue), then stop."""
        if self._provider is not None:
            self._provider.shutdown()

    @contextlib.contextmanager
    def request(self, method: str, headers: Mapping[str, str]) -> Iterator[Span | None]:
        """The request's span, current while the request is handled: a new trace's root, linked to the client's
        `traceparent` when it sent a valid one."""
        if not self.enabled:
            yield None
            return
        client = trace.get_current_span(_TRACE_CONTEXT.extract(headers)).get_span_context()
        links = [Link(client)] if client.is_valid else None
        span = self.tracer.start_span(method, context=otel_context.Context(), kind=SpanKind.SERVER, links=links)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)
            span.end()

    @staticmethod
    def generation(span: Span, record: GenerationRecord) -> None:
        """The generation's outcome on the request's span: ids, tokens, timings; no text."""
        if not span.is_recording():
            return
        outcome = "cancelled" if record.cancelled else "completed"
        attributes: dict[str, str | int | bool] = {
            "gen_ai.request.model": record.model,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "mistral_local.generation_id": record.id,
            "mistral_local.api_type": record.api_type,
            "mistral_local.streamed": record.streamed,
            "mistral_local.outcome": outcome,
            "mistral_local.cached_tokens": record.cached_tokens,
            "mistral_local.images": record.num_images,
            "mistral_local.latency_ms": record.latency_ms,
        }
        if record.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = record.finish_reason
        if record.ttft_ms is not None:
            attributes["mistral_local.ttft_ms"] = record.ttft_ms
        span.set_attributes(attributes)
