"""An engine's load and cache figures, read from vLLM's own Prometheus metrics (`/metrics` on its API server)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# vLLM's names (v1 engine); counters lose their `_total` in the parser's families.
_FIELDS = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:prefix_cache_queries": "prefix_queries",
    "vllm:prefix_cache_hits": "prefix_hits",
    "vllm:request_success": "requests",
}


@dataclass(frozen=True)
class Load:
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0  # 0..1
    prefix_queries: float = 0.0  # prompt tokens looked up in the prefix cache, since the engine started
    prefix_hits: float = 0.0  # of those, found
    requests: float = 0.0  # requests finished, since the engine started

    @property
    def prefix_hit_rate(self) -> float:
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else 0.0


_WANTED = tuple(_FIELDS)


def _wanted(line: str) -> bool:
    """A sample or HELP/TYPE line of one of the figures (the rest of the page is never parsed)."""
    if line.startswith("# "):
        parts = line.split(" ", 3)
        return len(parts) > 2 and parts[2].startswith(_WANTED)
    return line.startswith(_WANTED)


def parse_load(text: str) -> Load:
    """The figures in a `/metrics` page; a page without them (another server) reads as idle. Only their lines are
    parsed: the page is mostly histograms, and parsing it whole took 11 ms of the serving event loop every probe."""
    values = dict.fromkeys(_FIELDS.values(), 0.0)
    lines = "\n".join(line for line in text.splitlines() if _wanted(line)) + "\n"
    for family in text_string_to_metric_families(lines):
        field = _FIELDS.get(family.name)
        if field is None:
            continue
        samples = [s.value for s in family.samples if not s.name.endswith("_created")]
        if samples:  # KV use: the fullest rank's; the rest: summed over ranks and labels
            values[field] = max(samples) if field == "kv_usage" else sum(samples)
    return Load(**values)
