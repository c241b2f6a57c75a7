"""`--compare A B`: the same workload against two targets, interleaved in rounds so machine drift hits both.

Rounds alternate the order (A B, B A, A B, …). The two targets get the same lengths and shapes but different random
tokens: when both reach the same engine (gateway against engine direct), identical prompts would let the second
run hit the prefix cache the first one filled. Each metric is reported as the ratio B / A over all rounds, with the
spread of the per-round ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.bench.client import Target
from server.bench.load import LoadShape, Run, run_load
from server.bench.metrics import Slo, summarize
from server.bench.workload import BenchRequest

RATIO_KEYS = (
    "output_throughput",
    "request_throughput",
    "median_ttft_ms",
    "p99_ttft_ms",
    "median_tpot_ms",
    "median_itl_ms",
    "median_e2el_ms",
)


@dataclass
class Comparison:
    a: dict[str, Any]  # pooled results of every round
    b: dict[str, Any]
    ratios: dict[str, dict[str, float]]  # key -> {"pooled", "median", "min", "max"}


def _pool(runs: list[Run]) -> Run:
    return Run(runs[0].target, runs[0].shape, [o for r in runs for o in r.outcomes], sum(r.duration for r in runs))


async def compare(
    targets: tuple[Target, Target],
    workloads: tuple[list[BenchRequest], list[BenchRequest]],
    shape: LoadShape,
    rounds: int,
    slo: Slo | None = None,
    runner: Callable[[Target, list[BenchRequest], LoadShape], Awaitable[Run]] | None = None,
) -> Comparison:
    go = runner or (lambda t, reqs, s: run_load(t, reqs, s))
    size = max(1, len(workloads[0]) // rounds)
    runs: tuple[list[Run], list[Run]] = ([], [])
    for i in range(rounds):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for k in order:
            runs[k].append(await go(targets[k], workloads[k][i * size : (i + 1) * size], shape))
    pooled = [summarize(_pool(r), slo) for r in runs]
    per_round = [(summarize(a, slo), summarize(b, slo)) for a, b in zip(*runs, strict=True)]
    ratios = {}
    for key in RATIO_KEYS:
        each = [b[key] / a[key] for a, b in per_round if a[key]]
        ratios[key] = {
            "pooled": pooled[1][key] / pooled[0][key] if pooled[0][key] else float("nan"),
            "median": statistics.median(each) if each else float("nan"),
            "min": min(each, default=float("nan")),
            "max": max(each, default=float("nan")),
        }
    return Comparison(pooled[0], pooled[1], ratios)
