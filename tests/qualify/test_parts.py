"""Qualification's arithmetic and log reading, without an engine: vLLM's start-up lines as releases print them, the
planner's predictions for a shipped GPU profile, and the verdicts."""

from __future__ import annotations

import pytest

from server.engine.profiles import load_profile
from server.planning.model_shape import REFERENCE_PARAMS
from server.qualify.facts import planner_view, predicted_kv_tokens, roofline_tok_s, verdict
from server.qualify.startup import startup_figures

GPU_LOG = """\
[engine] (Worker pid=7) INFO 11-29 10:00:10 [default_loader.py:291] Loading weights took 0.52 seconds
[engine] (Worker pid=7) INFO 11-29 10:00:11 [gpu_model_runner.py:5150] Model loading took 44.71 GiB memory and 3.901 seconds
[engine] (Worker pid=7) INFO 11-29 10:00:40 [monitor.py:40] torch.compile took 25.31 s in total
[engine] (EngineCore pid=6) INFO 11-29 10:00:45 [kv_cache_utils.py:2327] GPU KV cache size: 431,312 tokens, Maximum concurrency for 128,000 tokens per request: 3.37x
[engine] (Worker pid=7) INFO 11-29 10:01:01 [gpu_model_runner.py:6582] Graph capturing finished in 14 secs, took 0.79 GiB
[engine] (EngineCore pid=6) INFO 11-29 10:01:02 [core.py:402] init engine (profile, create kv cache, warmup model) took 51.20 s
"""  # noqa: E501


def test_startup_figures_from_vllms_lines() -> None:
    assert startup_figures(GPU_LOG) == {
        "weights_s": 0.52,
        "model_loading_s": 3.901,
        "model_loading_gib": 44.71,
        "compile_s": 25.31,
        "cuda_graphs_s": 14.0,
        "cuda_graphs_gib": 0.79,
        "init_engine_s": 51.2,
        "kv_cache_tokens": 431312,  # the log's own figure, not the planner's (the parser is tested, not the plan)
        "max_concurrency": 3.37,
    }
    assert startup_figures("nothing logged") == {}


# The model facts sheet's own arithmetic (shared/docs/mistral-small-3.1-facts.md, 3.2-3.3), written out here so the
# planner is checked against it rather than against a figure it printed: 160 KiB of bf16 KV a token (2 x 40 layers x
# 8 KV heads x 128 dims x 2 bytes), 48.0 GB of bf16 weights, about 4 GB for activations and CUDA graphs, at 0.9.
KV_BYTES_PER_TOKEN = 2 * 40 * 8 * 128 * 2
H200_BYTES = 150_754_820_096  # nvidia-smi's total on an H200 (docs/deploy.md)


def facts_kv_tokens(memory_bytes: float) -> float:
    return (0.9 * memory_bytes - 48.0e9 - 4.0e9) / KV_BYTES_PER_TOKEN


def test_the_facts_arithmetic_gives_the_sheets_table() -> None:
    assert facts_kv_tokens(80e9) == pytest.approx(122_000, rel=0.01)  # the sheet: H100 80 GB, ~122k
    assert facts_kv_tokens(141e9) == pytest.approx(457_000, rel=0.01)  # the sheet: H200 141 GB, ~457k


@pytest.mark.parametrize(("name", "memory", "tok_s_at_128k"), [("h200-x1", H200_BYTES, 71), ("h100-x1", None, 50)])
def test_a_gpu_profiles_plan_agrees_with_the_facts_sheet(name: str, memory: float | None, tok_s_at_128k: int) -> None:
    profile = load_profile(name)
    plan = planner_view(profile, REFERENCE_PARAMS)
    assert plan is not None
    assert predicted_kv_tokens(profile, REFERENCE_PARAMS, plan) == plan.kv_tokens
    if memory is not None:  # the planner also sets the vision encoder's 0.4 GB aside: a little under the sheet's sum
        assert facts_kv_tokens(memory) * 0.98 < plan.kv_tokens < facts_kv_tokens(memory)
    # The sheet: bf16 weights plus a 128k bf16 KV cache read each step allow at most 71 tok/s (H200), 50 (H100).
    assert roofline_tok_s(plan, 1, 128_000) == pytest.approx(tok_s_at_128k, rel=0.03)
    one = roofline_tok_s(plan, 1, 1088)
    assert one < plan.decode_ceiling_tok_s  # reading a sequence's KV cache costs a little
    assert roofline_tok_s(plan, 256, 1088) > 50 * one  # batching shares the weights' reads


def test_verdicts() -> None:
    assert verdict("gateway_throughput_of_engine", 0.99) == {"value": 0.99, "target": 0.98, "met": True}
    assert verdict("gateway_throughput_of_engine", 0.97)["met"] is False
    assert verdict("kv_tokens_of_planner", 1.04)["met"] is True
    assert verdict("kv_tokens_of_planner", 0.94)["met"] is False
    assert verdict("kv_tokens_of_planner", 1.06)["met"] is False
    assert verdict("decode_batch1_of_ceiling", None) == {"value": None, "target": 0.9, "met": None}
