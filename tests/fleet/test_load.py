"""An engine's load and cache figures from its /metrics page, as vLLM (0.32.0, CPU build) wrote it after three
requests (two of them the same prompt, too short to fill a cache block)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.fleet.load import Load, parse_load

PAGE = (Path(__file__).resolve().parents[1] / "fixtures" / "vllm" / "metrics-0.32.0-cpu.txt").read_text()


def test_the_figures_of_a_real_page() -> None:
    load = parse_load(PAGE)
    assert load == Load(running=0, waiting=0, kv_usage=0, prefix_queries=52, prefix_hits=0, requests=3)
    assert load.prefix_hit_rate == 0


def test_ranks_add_up_and_the_fullest_cache_counts() -> None:
    page = "\n".join(
        [
            "# HELP vllm:num_requests_running running",
            "# TYPE vllm:num_requests_running gauge",
            'vllm:num_requests_running{engine="0"} 3.0',
            'vllm:num_requests_running{engine="1"} 2.0',
            "# HELP vllm:kv_cache_usage_perc usage",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            'vllm:kv_cache_usage_perc{engine="0"} 0.25',
            'vllm:kv_cache_usage_perc{engine="1"} 0.75',
            "",
        ]
    )
    load = parse_load(page)
    assert load.running == 5 and load.kv_usage == 0.75
    assert Load(prefix_queries=200, prefix_hits=150).prefix_hit_rate == pytest.approx(0.75)


def test_a_page_without_vllms_figures_reads_as_idle() -> None:
    assert parse_load("# nothing here\n") == Load()


def test_a_page_that_is_not_prometheus_text_is_an_error() -> None:
    with pytest.raises(ValueError, match="could not convert"):
        parse_load('vllm:num_requests_running{engine="0" 3\n')
