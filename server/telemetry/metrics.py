"""Every Prometheus metric of the gateway, in one registry per app (no globals: tests run several apps).

Labels never carry content: route templates, status codes and key labels only. Gateway workers (server/workers/)
count in prometheus_client's multiprocess mode, so any worker's /metrics shows the sums over all of them; gauges are
read live from the shared state when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class LiveGauges(Collector):
    """Gauges computed when scraped, so nothing has to remember to update them."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (doc, read) in self.gauges.items():
            yield GaugeMetricFamily(name, doc, value=read())


# Each engine of the fleet, labelled by its name: read from the fleet's description of it when scraped.
ENGINE_GAUGES = {
    "up": "1 when the engine takes requests (ready and answering)",
    "in_flight": "Requests this gateway process has on the engine",
    "running": "Requests the engine runs (vLLM's num_requests_running)",
    "waiting": "Requests the engine queues (vLLM's num_requests_waiting)",
    "kv_cache_usage": "The engine's KV cache in use, 0 to 1 (vLLM's kv_cache_usage_perc)",
    "prefix_cache_hit_rate": "Prompt tokens found in the engine's prefix cache since it started, 0 to 1",
}


class EngineGauges(Collector):
    """`engines`: one dict per engine, with `name`, `state` and the figures of ENGINE_GAUGES."""

    def __init__(self, engines: Callable[[], list[dict[str, Any]]]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engines = self.engines()
        for field, doc in ENGINE_GAUGES.items():
            family = GaugeMetricFamily(f"mistral_local_engine_{field}", doc, labels=["engine"])
            for e in engines:
                value = float(e["state"] == "ready") if field == "up" else float(e[field])
                family.add_metric([e["name"]], value)
            yield family


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        """`multiprocess_dir`: where every worker's counters live (PROMETHEUS_MULTIPROC_DIR, which must be set in
        the environment before prometheus_client is imported: it picks its storage then)."""
        r = CollectorRegistry()
        # What /metrics shows: this process's metrics, or every worker's.
        self.registry = r
        if multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
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

    def bind(
        self,
        *,
        in_flight: Callable[[], float],
        queue_depth: Callable[[], float],
        engine_ready: Callable[[], float],
        engine_restarts: Callable[[], float],
        engines: Callable[[], list[dict[str, Any]]],
    ) -> None:
        """The gauges, read from live state when scraped."""
        gauges = {
            "mistral_local_in_flight": ("Generations in flight", in_flight),
            "mistral_local_queue_depth": ("Requests waiting for admission", queue_depth),
            "mistral_local_engine_ready": ("1 when the engine is ready", engine_ready),
            "mistral_local_engine_restarts": ("Engine restarts since start", engine_restarts),
        }
        self.registry.register(LiveGauges(gauges))
        self.registry.register(EngineGauges(engines))

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
