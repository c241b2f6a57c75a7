"""Every Prometheus metric of the gateway, in one registry per app (no globals: tests run several apps).

Labels never carry content: route templates, status codes and key labels only.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mistral_local_requests", "HTTP requests", ["route", "status", "key"], registry=r)
        self.rejections = Counter(
            "mistral_local_admission_rejections", "Requests refused by admission", ["status"], registry=r
        )
        self.ttft = Histogram(
            "mistral_local_time_to_first_token_seconds",
            "Request received to first token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "mistral_local_request_latency_seconds",
            "Request received to last byte",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("mistral_local_tokens", "Tokens processed", ["direction", "key"], registry=r)
        self.in_flight = Gauge("mistral_local_in_flight", "Generations in flight", registry=r)
        self.queue_depth = Gauge("mistral_local_queue_depth", "Requests waiting for admission", registry=r)
        self.engine_ready = Gauge("mistral_local_engine_ready", "1 when the engine is ready", registry=r)
        self.engine_restarts = Gauge("mistral_local_engine_restarts", "Engine restarts since start", registry=r)

    def bind(
        self,
        *,
        in_flight: Callable[[], float],
        queue_depth: Callable[[], float],
        engine_ready: Callable[[], float],
        engine_restarts: Callable[[], float],
    ) -> None:
        """Gauges read live state when scraped, so nothing has to remember to update them."""
        self.in_flight.set_function(in_flight)
        self.queue_depth.set_function(queue_depth)
        self.engine_ready.set_function(engine_ready)
        self.engine_restarts.set_function(engine_restarts)

    def request(self, route: str, status: int, key: str | None) -> None:
        self.requests.labels(route, str(status), key or "-").inc()
        if status in (402, 429, 503) and route.endswith("completions"):
            self.rejections.labels(str(status)).inc()

    def generation(
        self,
        *,
        api: str,
        key: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        ttft_s: float | None,
    ) -> None:
        label = key or "-"
        self.tokens.labels("in", label).inc(prompt_tokens)
        self.tokens.labels("out", label).inc(completion_tokens)
        self.latency.labels(api).observe(latency_s)
        if ttft_s is not None:
            self.ttft.observe(ttft_s)
