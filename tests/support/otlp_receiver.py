"""A small OpenTelemetry collector for tests: it takes OTLP/HTTP trace exports (protobuf, as every OTLP exporter
sends them) on loopback, decodes them with OpenTelemetry's own protobuf classes, and keeps the spans."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from server.serving import free_port


@dataclass
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass
class ReceivedSpan:
    service: str
    resource: dict[str, Any]  # the exporting process's attributes (service.name, process.pid…)
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    status_code: int = 0  # 0 unset, 1 ok, 2 error
    status_message: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id) of each linked span

    def strings(self) -> Iterator[str]:
        """Every text this span exported: names, attribute values, events."""
        yield self.name
        for attributes in (self.attributes, *(e.attributes for e in self.events)):
            yield from (str(v) for v in attributes.values())
        yield from (e.name for e in self.events)
        yield self.status_message


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(list(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        resource=resource,
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes=_attributes(list(s.attributes)),
                        events=[Event(e.name, e.time_unix_nano, _attributes(list(e.attributes))) for e in s.events],
                        status_code=s.status.code,
                        status_message=s.status.message,
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                    )
                )
    return spans


class Receiver:
    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self._lock = threading.Lock()

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self.spans.extend(spans)
            self.exports += 1

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def linked_to(self, trace_id: str, timeout_s: float = 30) -> str:
        """The trace whose root links to a span of `trace_id` (a client's), once exported."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = [s.trace_id for s in self.spans if any(t == trace_id for t, _ in s.links)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no trace links to {trace_id} after {timeout_s} s")

    def wait_for(self, trace_id: str, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 30) -> list[Any]:
        """The trace's spans once `done` holds for them (exporters send in batches, on their own schedule)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            spans = self.trace(trace_id)
            if done(spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(
            f"trace {trace_id} incomplete after {timeout_s} s: {[s.name for s in self.trace(trace_id)]}"
        )


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """A collector on a free loopback port taking OTLP/HTTP at /v1/traces."""
    receiver = Receiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            receiver.add(decode(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(receiver.endpoint.rsplit(":", 1)[1])), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
