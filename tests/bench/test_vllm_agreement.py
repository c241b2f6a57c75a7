"""`mistral-local bench` and `vllm bench serve` read the same recorded requests the same way: vLLM's own metric code
(vllm.benchmarks.serve.calculate_metrics) and ours (server/bench/metrics.py) are given one set of timings, with no
clock involved, and must give the same figures. The end-to-end check against a stream of known timings is
tests/bench/test_bench_command.py."""

from __future__ import annotations

import random
import warnings
from types import ModuleType
from typing import Any

import pytest

from server.bench.client import Outcome, Target
from server.bench.load import LoadShape, Run
from server.bench.metrics import Slo, summarize

PERCENTILES = [50.0, 90.0, 99.0]


def recorded(seed: int) -> list[Outcome]:
    """Forty requests as a sweep records them: varied TTFTs, token gaps (some 0: tokens that arrived in one read),
    lengths from one token up, one failure."""
    rng = random.Random(seed)
    outcomes = []
    for i in range(40):
        tokens = rng.choice([1, 2, 16, 64, 128])
        itls = [rng.choice([0.0, rng.uniform(0.005, 0.08)]) for _ in range(tokens - 1)]
        ttft = rng.uniform(0.05, 1.5)
        start = i * 0.1
        outcomes.append(Outcome(start, True, ttft, ttft + sum(itls), itls, rng.randint(8, 2048), tokens))
    outcomes.append(Outcome(4.0, error="HTTP 429 rate_limited"))
    return outcomes


@pytest.fixture(scope="module")
def vllm_bench() -> ModuleType:
    """vLLM's benchmark module (it imports torch, whose own deprecation warnings are not ours to fail on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.benchmarks import serve

    return serve


def as_vllm(vllm_bench: ModuleType, o: Outcome) -> Any:
    return vllm_bench.RequestFuncOutput(
        success=o.ok, latency=o.latency, output_tokens=o.output_tokens, ttft=o.ttft, itl=o.itls,
        prompt_len=o.prompt_tokens, error=o.error, start_time=o.start,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_recorded_requests_same_figures(vllm_bench: ModuleType, seed: int) -> None:
    outcomes = recorded(seed)
    duration = max(o.start + o.latency for o in outcomes if o.ok)
    slo = {"ttft": 800.0, "tpot": 40.0}
    run = Run(Target("http://x/v1", "m"), LoadShape(), outcomes, duration)
    ours = summarize(run, Slo.parse([f"{k}:{v}" for k, v in slo.items()]))
    inputs = [vllm_bench.SampleRequest(prompt="", prompt_len=o.prompt_tokens) for o in outcomes]
    outputs = [as_vllm(vllm_bench, o) for o in outcomes]
    theirs, output_lens = vllm_bench.calculate_metrics(inputs, outputs, duration, None, PERCENTILES, slo)
    assert (ours["completed"], ours["failed"]) == (theirs.completed, theirs.failed)
    assert ours["total_output_tokens"] == theirs.total_output == sum(output_lens)
    for key in ("request_throughput", "output_throughput", "total_token_throughput", "request_goodput"):
        assert ours[key] == pytest.approx(getattr(theirs, key)), key
    for metric in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std"):
            key = f"{stat}_{metric}_ms"
            assert ours[key] == pytest.approx(getattr(theirs, key)), key
        for p, value in getattr(theirs, f"percentiles_{metric}_ms"):
            assert ours[f"p{p:g}_{metric}_ms"] == pytest.approx(value), (metric, p)
