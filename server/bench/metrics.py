"""Benchmark results with vLLM's definitions and `vllm bench serve --save-result` field names
(vllm/benchmarks/serve.py: calculate_metrics). TPOT = (E2EL - TTFT) / (output tokens - 1), per request, for
requests of more than one output token; ITL = every gap between chunks, pooled; throughputs = totals / duration
(first send to last completion); percentiles by numpy's linear interpolation."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.bench.load import Run

PERCENTILES = (50, 90, 99)
METRICS = ("ttft", "tpot", "itl", "e2el")


@dataclass(frozen=True)
class Slo:
    """Goodput limits in milliseconds (`--slo ttft:500 tpot:50 e2el:10000`); a request is good if it meets all."""

    limits: dict[str, float]

    @classmethod
    def parse(cls, pairs: list[str]) -> Slo:
        limits = {}
        for pair in pairs:
            name, _, value = pair.partition(":")
            if name not in ("ttft", "tpot", "e2el"):
                raise ValueError(f"SLO {pair!r}: the metric must be ttft, tpot or e2el")
            limits[name] = float(value)
        return cls(limits)


def _tpot(latency: float, ttft: float, tokens: int) -> float | None:
    return (latency - ttft) / (tokens - 1) if tokens > 1 else None


def _stats(name: str, values_s: list[float]) -> dict[str, float]:
    ms = np.array(values_s, dtype=float) * 1000 if values_s else np.array([math.nan])
    out = {
        f"mean_{name}_ms": float(np.mean(ms)),
        f"median_{name}_ms": float(np.median(ms)),
        f"std_{name}_ms": float(np.std(ms)),
    }
    out |= {f"p{p}_{name}_ms": float(np.percentile(ms, p)) for p in PERCENTILES}
    return out


def summarize(run: Run, slo: Slo | None = None) -> dict[str, Any]:
    ok = [o for o in run.outcomes if o.ok]
    tpots = [t for o in ok if (t := _tpot(o.latency, o.ttft, o.output_tokens)) is not None]
    values = {
        "ttft": [o.ttft for o in ok],
        "tpot": tpots,
        "itl": [gap for o in ok for gap in o.itls],
        "e2el": [o.latency for o in ok],
    }
    total_in, total_out = sum(o.prompt_tokens for o in ok), sum(o.output_tokens for o in ok)
    result: dict[str, Any] = {
        "model_id": run.target.model,
        "label": run.target.label,
        "base_url": run.target.base_url,
        "request_rate": "inf" if math.isinf(run.shape.request_rate) else run.shape.request_rate,
        "burstiness": run.shape.burstiness,
        "max_concurrency": run.shape.max_concurrency,
        "num_prompts": len(run.outcomes),
        "duration": run.duration,
        "completed": len(ok),
        "failed": len(run.outcomes) - len(ok),
        "errors_by_code": dict(Counter(o.error for o in run.outcomes if not o.ok)),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(ok) / run.duration,
        "output_throughput": total_out / run.duration,
        "total_token_throughput": (total_in + total_out) / run.duration,
        "request_goodput": None,
    }
    for name in METRICS:
        result |= _stats(name, values[name])
    if slo is not None and slo.limits:
        good = sum(1 for o in ok if _meets(o.ttft, o.latency, o.output_tokens, slo))
        result["request_goodput"] = good / run.duration
    result["ttfts"] = values["ttft"]
    result["latencies"] = values["e2el"]
    return result


def _meets(ttft: float, latency: float, tokens: int, slo: Slo) -> bool:
    measured = {"ttft": ttft, "tpot": _tpot(latency, ttft, tokens) or 0.0, "e2el": latency}  # vLLM: TPOT 0 if ≤1
    return all(measured[k] * 1000 <= limit for k, limit in slo.limits.items())
