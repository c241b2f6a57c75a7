"""`mistral-local bench` end to end against the real engine: a concurrency sweep through the gateway, a gateway vs
engine-direct comparison, failures counted by code; and, against an engine with known timings, both it and
`vllm bench serve` measuring what the engine was told to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.serving import free_port
from tests.support.gateway_process import ENGINE_KEY, Gateway, start_gateway

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
        # Mean ITL, not median: tokens of one stream that reach the client in one read have a gap of 0, and on a busy
        # machine that can be most of them.
        for key in ("request_throughput", "output_throughput", "median_ttft_ms", "p99_tpot_ms", "mean_itl_ms"):
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


# Cross-check against `vllm bench serve`, against the truth rather than against each other: both tools measure a gateway
# in front of the synthetic engine (`mistral-local bench synthetic-engine`), which writes vLLM's exact bytes with a
# first token after FIRST_MS and the rest every INTERVAL_MS. A busy machine only makes timers late, never early, so each
# tool's figures are checked from one side only: no earlier (and no faster) than the engine was told to be, beyond timer
# granularity (EARLY). How late a shared machine makes them is no test's business; the definitions (TPOT without the
# first token, TTFT to the first content chunk) are checked without a clock, against vLLM's own metric code, in
# tests/bench/test_vllm_agreement.py.
FIRST_MS, INTERVAL_MS, TOKENS, PROMPTS = 800.0, 40.0, 16, 8
EARLY = 0.97
TRUTH = {
    "median_ttft_ms": FIRST_MS,
    "median_tpot_ms": INTERVAL_MS,
    "request_throughput": 1000 / (FIRST_MS + (TOKENS - 1) * INTERVAL_MS),  # one request at a time
}


@pytest.fixture(scope="module")
def synthetic() -> Iterator[Gateway]:
    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-m", "server", "bench", "synthetic-engine", "--port", str(port), "--tokens", str(TOKENS),
         "--interval-ms", str(INTERVAL_MS), "--first-token-ms", str(FIRST_MS),
         "--model", "mistralai/mistral-small-3.1-24b-instruct"],
    )  # fmt: skip
    gw = start_gateway(
        "gateway-synthetic", "--engine-url", f"http://127.0.0.1:{port}", env={"MISTRAL_LOCAL_API_KEYS": "[]"}
    )
    try:
        gw.wait_ready(timeout_s=60)
        yield gw
    finally:
        gw.stop()
        engine.terminate()
        engine.wait(30)


def ours(gateway: Gateway, out: Path) -> dict[str, float]:
    bench(
        out, "--base-url", f"{gateway.url}/v1", "--input-len", "32", "--output-len", str(TOKENS),
        "--num-prompts", str(PROMPTS), "--warmups", "1", "--max-concurrency", "1",
    )  # fmt: skip
    result: dict[str, float] = json.loads((out / "results.json").read_text())
    return result


def vllms(gateway: Gateway, tiny_model: Path, out: Path) -> dict[str, float]:
    cmd = [
        sys.executable, "-m", "server", "bench", "vllm-serve", "--backend", "openai-chat", "--base-url", gateway.url,
        "--endpoint", "/v1/chat/completions", "--model", "mistralai/mistral-small-3.1-24b-instruct",
        "--tokenizer", str(tiny_model), "--tokenizer-mode", "mistral", "--dataset-name", "random",
        "--random-input-len", "32", "--random-output-len", str(TOKENS), "--num-prompts", str(PROMPTS),
        "--num-warmups", "1", "--max-concurrency", "1", "--ignore-eos", "--seed", "0", "--disable-tqdm",
        "--save-result", "--result-dir", str(out), "--result-filename", "vllm.json",
        "--percentile-metrics", "ttft,tpot,itl,e2el",
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, float] = json.loads((out / "vllm.json").read_text())
    assert result["completed"] == PROMPTS, done.stdout[-2000:]
    return result


@pytest.mark.parametrize("tool", ["mistral-local bench", "vllm bench serve"])
def test_each_tool_measures_what_the_engine_was_told_to_do(
    synthetic: Gateway, tiny_model: Path, tmp_path: Path, tool: str
) -> None:
    result = ours(synthetic, tmp_path) if tool == "mistral-local bench" else vllms(synthetic, tiny_model, tmp_path)
    assert result["total_output_tokens"] == PROMPTS * TOKENS
    for key in ("median_ttft_ms", "median_tpot_ms"):
        assert EARLY * TRUTH[key] <= result[key], f"{tool} {key}: {result[key]} vs {TRUTH[key]}"
    throughput, truth = result["request_throughput"], TRUTH["request_throughput"]
    assert throughput <= truth / EARLY, f"{tool} request throughput: {throughput} vs {truth}"
