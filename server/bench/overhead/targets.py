"""The gateway overhead targets (issue: "the OpenRouter layer must cost almost nothing"), checked against a report
of `mistral-local bench overhead`: each says what was measured, the bound, and by how much it is met or missed.
Benchmark verdicts, never test assertions: the figures move with the machine (docs/performance.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PEER_FACTOR = 5.0  # at least this many times less added latency and CPU per chunk than LiteLLM's proxy


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: float
    bound: float
    at_most: bool  # the bound is a ceiling (else a floor)

    @property
    def met(self) -> bool:
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def line(self) -> str:
        gap = abs(self.measured - self.bound)
        verdict = "met" if self.met else f"missed by {gap:.3g}"
        sign = "≤" if self.at_most else "≥"
        return f"{self.target}: {self.measured:.3g} (target {sign} {self.bound:g}): {verdict}"


def _times(theirs: float, ours: float) -> float:
    """How many times less `ours` is; a gateway that adds nothing (or less than nothing) is infinitely better."""
    return float("inf") if ours <= 0 else theirs / ours


def verdicts(report: dict[str, Any]) -> list[Verdict]:
    gateway, found = report.get("gateway", {}), []
    if report["engine"] == "synthetic":
        if row := gateway.get("c64"):  # every synthetic-engine target is at 64 streams
            found.append(Verdict("added TTFT p50 at 64 streams, ms", row["added_ttft_p50_ms"], 1.0, True))
            found.append(Verdict("added TTFT p99 at 64 streams, ms", row["added_ttft_p99_ms"], 5.0, True))
            found.append(Verdict("gateway CPU per chunk at 64 streams, µs", row["cpu_us_per_chunk"], 25.0, True))
    elif row := gateway.get("c32"):
        what = "throughput through / direct at 32 streams, real engine"
        found.append(Verdict(what, row["throughput_ratio"], 0.98, False))
    for level, peer in report.get("litellm", {}).items():
        if (row := gateway.get(level)) is None:
            continue
        for what, key in (("added TTFT p50", "added_ttft_p50_ms"), ("added TTFT p99", "added_ttft_p99_ms"),
                          ("CPU per chunk", "cpu_us_per_chunk")):  # fmt: skip
            times = _times(peer[key], row[key])
            found.append(Verdict(f"{what}: times less than LiteLLM at {level[1:]} streams", times, PEER_FACTOR, False))
    return found


def summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdicts, printed and as JSON for the report."""
    found = verdicts(report)
    for verdict in found:
        print(verdict.line(), flush=True)
    return [asdict(v) | {"met": v.met} for v in found]
