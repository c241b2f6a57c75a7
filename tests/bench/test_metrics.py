"""The benchmark's arithmetic against vLLM's definitions (vllm/benchmarks/serve.py), on hand-made outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.bench.client import Outcome, Target
from server.bench.load import LoadShape, Run, send_offsets
from server.bench.metrics import Slo, summarize

TARGET = Target("http://127.0.0.1:1/v1", "m", label="t")


def outcome(ttft: float, itls: list[float], prompt: int, out: int) -> Outcome:
    return Outcome(ok=True, ttft=ttft, itls=itls, latency=ttft + sum(itls), prompt_tokens=prompt, output_tokens=out)


def test_tpot_excludes_the_first_token_and_itl_pools_every_gap() -> None:
    runs = [outcome(0.1, [0.02, 0.02, 0.02], 10, 4), outcome(0.3, [0.04], 20, 2), outcome(0.2, [], 5, 1)]
    r = summarize(Run(TARGET, LoadShape(), runs, duration=2.0))
    # TPOT per request: (E2EL - TTFT) / (tokens - 1) = 20 ms and 40 ms; the 1-token request has none.
    assert r["mean_tpot_ms"] == pytest.approx(30.0)
    assert r["median_itl_ms"] == pytest.approx(20.0)  # gaps 20, 20, 20, 40
    assert r["mean_ttft_ms"] == pytest.approx(200.0)
    assert r["p99_ttft_ms"] == pytest.approx(float(np.percentile([100, 300, 200], 99)))
    assert r["mean_e2el_ms"] == pytest.approx((160 + 340 + 200) / 3)
    assert (r["request_throughput"], r["output_throughput"], r["total_token_throughput"]) == (1.5, 3.5, 21.0)


def test_failures_are_counted_by_code_never_dropped() -> None:
    failed = [Outcome(error="HTTP 429 429"), Outcome(error="HTTP 429 429"), Outcome(error="timeout")]
    r = summarize(Run(TARGET, LoadShape(), [outcome(0.1, [0.01], 3, 2), *failed], duration=1.0))
    assert (r["completed"], r["failed"], r["num_prompts"]) == (1, 3, 4)
    assert r["errors_by_code"] == {"HTTP 429 429": 2, "timeout": 1}


def test_goodput_counts_requests_meeting_every_slo() -> None:
    runs = [outcome(0.1, [0.01] * 9, 5, 10), outcome(0.6, [0.01] * 9, 5, 10), outcome(0.1, [0.05] * 9, 5, 10)]
    r = summarize(Run(TARGET, LoadShape(), runs, duration=2.0), Slo.parse(["ttft:500", "tpot:20"]))
    assert r["request_goodput"] == 0.5  # only the first is within both
    with pytest.raises(ValueError, match="ttft, tpot or e2el"):
        Slo.parse(["itl:5"])


def test_poisson_arrivals_end_exactly_at_n_over_rate_and_repeat_with_the_seed() -> None:
    offsets = send_offsets(100, rate=10.0, burstiness=1.0, seed=3)
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    gaps = np.diff(offsets)
    assert 0.06 < gaps.mean() < 0.14  # about 1/rate
    assert offsets == send_offsets(100, rate=10.0, burstiness=1.0, seed=3)
    bursty = np.diff(send_offsets(100, rate=10.0, burstiness=0.2, seed=3))
    assert bursty.std() > gaps.std()  # burstiness < 1: burstier
    assert send_offsets(4, rate=math.inf, burstiness=1.0, seed=0) == [0.0] * 4
