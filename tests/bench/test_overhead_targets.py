"""The overhead benchmark's verdicts on the issue's targets: measured, bound, met or missed by how much."""

from __future__ import annotations

from types import ModuleType

from server.bench.overhead import targets as overhead_targets


def targets() -> ModuleType:
    return overhead_targets


def row(p50: float, p99: float, cpu: float, ratio: float = 1.0) -> dict[str, float]:
    return {"added_ttft_p50_ms": p50, "added_ttft_p99_ms": p99, "cpu_us_per_chunk": cpu, "throughput_ratio": ratio}


def test_synthetic_targets_and_the_litellm_factor() -> None:
    report = {
        "engine": "synthetic",
        "gateway": {"c1": row(0.1, 0.2, 170.0), "c64": row(0.8, 6.0, 20.0)},
        "litellm": {"c64": row(8.0, 24.0, 200.0)},
    }
    lines = [v.line() for v in targets().verdicts(report)]
    assert lines == [
        "added TTFT p50 at 64 streams, ms: 0.8 (target ≤ 1): met",
        "added TTFT p99 at 64 streams, ms: 6 (target ≤ 5): missed by 1",
        "gateway CPU per chunk at 64 streams, µs: 20 (target ≤ 25): met",
        "added TTFT p50: times less than LiteLLM at 64 streams: 10 (target ≥ 5): met",
        "added TTFT p99: times less than LiteLLM at 64 streams: 4 (target ≥ 5): missed by 1",
        "CPU per chunk: times less than LiteLLM at 64 streams: 10 (target ≥ 5): met",
    ]


def test_a_gateway_that_adds_nothing_beats_any_peer_and_the_real_engine_floor() -> None:
    module = targets()
    synthetic = {"engine": "synthetic", "gateway": {"c64": row(-0.3, 0.0, 20.0)}, "litellm": {"c64": row(9, 9, 900)}}
    assert all(v.met for v in module.verdicts(synthetic))
    (real,) = module.summary({"engine": "cpu", "gateway": {"c32": row(5.0, 5.0, 60.0, ratio=0.97)}})
    assert real["met"] is False and real["bound"] == 0.98 and real["measured"] == 0.97
