"""`mistral-local bench` end to end against the real engine: a concurrency sweep through the gateway, a gateway vs
engine-direct comparison, failures counted by code, and the cross-check against `vllm bench serve`."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENGINE_KEY
from tests.gateway_process import Gateway

pytestmark = pytest.mark.engine
CLI = str(Path(sys.executable).parent / "mistral-local")
SMALL = ["--input-len", "64", "--output-len", "16", "--num-prompts", "8", "--warmups", "1"]


def bench(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [CLI, "bench", "--out", str(out), *args]
    env = os.environ | {"COLUMNS": "200"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_sweep_through_the_gateway_writes_results_plots_and_report(gateway: Gateway, tmp_path: Path) -> None:
    done = bench(tmp_path, "--base-url", f"{gateway.url}/api/v1", "--max-concurrency", "1,4", *SMALL)
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["max_concurrency"] for r in results] == [1, 4]
    for r in results:
        assert (r["completed"], r["failed"]) == (8, 0)
        assert r["total_output_tokens"] == 8 * 16  # ignore_eos reaches the engine through the gateway
        assert r["total_input_tokens"] >= 8 * 64  # the chat template adds a few tokens
        for key in ("request_throughput", "output_throughput", "median_ttft_ms", "p99_tpot_ms", "median_itl_ms"):
            assert r[key] > 0, key
    for png in ("throughput_vs_latency.png", "ttft_cdf.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{png}]({png})" in (tmp_path / "report.md").read_text()
    assert "output throughput (tok/s)" in done.stdout


def test_image_workload_through_the_gateway(gateway: Gateway, tmp_path: Path) -> None:
    bench(
        tmp_path, "--base-url", f"{gateway.url}/api/v1", "--dataset", "image", "--images", "1",
        "--image-size", "112x112", "--input-len", "16", "--output-len", "8", "--num-prompts", "2", "--warmups", "0",
    )  # fmt: skip
    (r,) = [json.loads((tmp_path / "results.json").read_text())]
    assert (r["completed"], r["failed"]) == (2, 0)
    # 112 px: 8 x 8 patches, merged 2 x 2 into 4 rows of 4 tokens plus a break each = 20 image tokens per prompt.
    assert r["total_input_tokens"] >= 2 * (16 + 20)


def test_unreachable_target_is_counted_not_fatal(tmp_path: Path) -> None:
    bench(tmp_path, "--base-url", "http://127.0.0.1:9/v1", "--warmups", "0", "--num-prompts", "3")
    (r,) = [json.loads((tmp_path / "results.json").read_text())]
    assert (r["completed"], r["failed"]) == (0, 3)
    assert r["errors_by_code"] == {"ClientConnectorError": 3}


def test_compare_gateway_with_engine_direct(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.engine_port is not None
    done = bench(
        tmp_path, "--base-url", f"http://127.0.0.1:{gateway.engine_port}/v1", "--api-key", ENGINE_KEY,
        "--label", "engine", "--compare", f"{gateway.url}/api/v1", "--compare-label", "gateway",
        "--rounds", "2", "--max-concurrency", "2", *SMALL,
    )  # fmt: skip
    engine, through = json.loads((tmp_path / "results.json").read_text())
    assert (engine["label"], through["label"]) == ("engine", "gateway")
    assert engine["completed"] == through["completed"] == 8
    assert engine["total_output_tokens"] == through["total_output_tokens"] == 8 * 16
    ratio = through["ratios_to_a"]["output_throughput"]
    assert ratio["min"] <= ratio["median"] <= ratio["max"] and ratio["pooled"] > 0
    assert "gateway / engine" in done.stdout


# Cross-check against `vllm bench serve` on the same gateway and workload. Both tools time the same points (send;
# first chunk with choices; last such chunk) with perf_counter over aiohttp and take token counts from `usage`, so
# what remains is: prompts of the same lengths but different tokens, and run-to-run noise. On this shared 2-core
# machine one tool's runs differ by up to 20% when something else takes a core for a few seconds, so the tools run
# in pairs back to back (order alternating), each pair gives a ratio, and the median of PAIRS ratios must be within
# 5% of 1 (the bound): a slow moment moves one pair, not the median. A definition mismatch (TPOT including
# the first token, TTFT from the keep-alive comment, counting tokens by chunks) moves every pair by 10% or more here.
# Even without hiccups, one tool's median TTFT moves ±5% from run to run here (125-139 ms, the same prompts, the
# engine's prefix cache equally warm for both tools): with 4 pairs of 24 requests the median pair fell past 5% about
# one run in six, so 6 pairs of 32.
AGREE = 0.05
PAIRS = 6
CROSS = {"input": 128, "output": 32, "prompts": 32, "warmups": 2}  # runs of ~13 s: a hiccup of a second moves ~8%
COMPARED = ("request_throughput", "output_throughput", "median_ttft_ms", "median_tpot_ms")


def ours(gateway: Gateway, out: Path) -> dict[str, float]:
    bench(
        out, "--base-url", f"{gateway.url}/v1", "--input-len", str(CROSS["input"]), "--output-len",
        str(CROSS["output"]), "--num-prompts", str(CROSS["prompts"]), "--warmups", str(CROSS["warmups"]),
        "--max-concurrency", "1",
    )  # fmt: skip
    result: dict[str, float] = json.loads((out / "results.json").read_text())
    return result


def vllms(gateway: Gateway, tiny_model: Path, out: Path) -> dict[str, float]:
    script = Path(__file__).resolve().parents[2] / "scripts" / "vllm_bench_serve.py"
    cmd = [
        sys.executable, str(script), "--backend", "openai-chat", "--base-url", gateway.url,
        "--endpoint", "/v1/chat/completions", "--model", "mistralai/mistral-small-3.1-24b-instruct",
        "--tokenizer", str(tiny_model), "--tokenizer-mode", "mistral", "--dataset-name", "random",
        "--random-input-len", str(CROSS["input"]), "--random-output-len", str(CROSS["output"]),
        "--num-prompts", str(CROSS["prompts"]), "--num-warmups", str(CROSS["warmups"]), "--max-concurrency", "1",
        "--ignore-eos", "--seed", "0", "--disable-tqdm", "--save-result", "--result-dir", str(out),
        "--result-filename", "vllm.json", "--percentile-metrics", "ttft,tpot,itl,e2el",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, float] = json.loads((out / "vllm.json").read_text())
    assert result["completed"] == CROSS["prompts"], done.stdout[-2000:]
    return result


def test_agrees_with_vllm_bench_serve(gateway: Gateway, tiny_model: Path, tmp_path: Path) -> None:
    ratios: dict[str, list[float]] = {key: [] for key in COMPARED}
    for i in range(PAIRS):
        first_ours = i % 2 == 0
        a = ours(gateway, tmp_path / f"ours{i}") if first_ours else vllms(gateway, tiny_model, tmp_path / f"vllm{i}")
        b = vllms(gateway, tiny_model, tmp_path / f"vllm{i}") if first_ours else ours(gateway, tmp_path / f"ours{i}")
        mine, theirs = (a, b) if first_ours else (b, a)
        for key in COMPARED:
            ratios[key].append(mine[key] / theirs[key])
    for key, values in ratios.items():
        assert abs(statistics.median(values) - 1) <= AGREE, f"{key}: ours / vllm bench serve per pair {values}"
