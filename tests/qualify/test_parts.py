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


def test_the_h200_profile_is_held_to_its_plan() -> None:
    profile = load_profile("h200-x1")
    plan = planner_view(profile, REFERENCE_PARAMS)
    assert plan is not None
    assert predicted_kv_tokens(profile, REFERENCE_PARAMS, plan) == plan.kv_tokens == 508014  # the profile's comment
    assert plan.decode_ceiling_tok_s == pytest.approx(105, abs=2)
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
