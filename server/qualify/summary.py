"""One qualification's figures as one JSON document, with a verdict per target (server/qualify/facts.py)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from server.qualify.facts import (
    machine,
    planner_view,
    predicted_kv_tokens,
    python_command,
    roofline_tok_s,
    verdict,
    versions,
)
from server.qualify.run import Session

KEPT = ("completed", "failed", "duration", "request_throughput", "output_throughput", "median_ttft_ms",
        "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "median_itl_ms", "median_e2el_ms")  # fmt: skip


def _side(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in KEPT if k in result}


def _pair(results: list[dict[str, Any]]) -> dict[str, Any]:
    engine, gateway = results
    ratios = {k: round(v["pooled"], 4) for k, v in gateway.get("ratios_to_a", {}).items()}
    return {"engine": _side(engine), "gateway": _side(gateway), "gateway_over_engine": ratios}


def summarize(s: Session, ready_s: float, measured: dict[str, Any], took_s: float) -> dict[str, Any]:
    plan = planner_view(s.profile, s.model_dir)
    kv_predicted = predicted_kv_tokens(s.profile, s.model_dir, plan)
    kv_seen = s.figures.get("kv_cache_tokens")
    text = {c: _pair(r) for c, r in measured["text"].items()}
    lowest, highest = min(text), max(text)
    batch1 = 1000 / text[lowest]["engine"]["median_tpot_ms"] if text[lowest]["engine"].get("median_tpot_ms") else None
    ceiling = plan.decode_ceiling_tok_s if plan is not None else None
    context = s.workload.input_len + s.workload.output_len // 2
    roofline = roofline_tok_s(plan, highest, context) if plan is not None else None
    aggregate = text[highest]["engine"]["output_throughput"]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": python_command(),
        "took_s": round(took_s, 1),
        "machine": machine(),
        "versions": versions(),
        "profile": s.profile.model_dump(mode="json", exclude_none=True),
        "model": "Mistral Small 3.1 24B, random weights" if s.profile.device == "cuda" else "scaled-down, random",
        "workers": s.workers,
        "workload": asdict(s.workload),
        "startup": {"ready_s": round(ready_s, 1), **s.figures},
        "kv_tokens": {"vllm": kv_seen, "predicted": kv_predicted},
        "decode": {
            "batch1_tok_s": batch1,
            "ceiling_tok_s": ceiling,
            "aggregate_tok_s": aggregate,
            "aggregate_batch": highest,
            "roofline_tok_s": roofline,
        },
        "text": {str(c): pair for c, pair in text.items()},
        "image": _pair(measured["image"]),
        "verdicts": {
            "decode_batch1_of_ceiling": verdict("decode_batch1_of_ceiling", _ratio(batch1, ceiling)),
            "aggregate_decode_of_roofline": verdict("aggregate_decode_of_roofline", _ratio(aggregate, roofline)),
            "kv_tokens_of_planner": verdict("kv_tokens_of_planner", _ratio(kv_seen, kv_predicted)),
            "gateway_throughput_of_engine": verdict(
                "gateway_throughput_of_engine", text[highest]["gateway_over_engine"].get("output_throughput")
            ),
        },
    }


def _ratio(measured: float | None, reference: float | None) -> float | None:
    return measured / reference if measured is not None and reference else None
