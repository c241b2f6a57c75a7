"""check-model on the tiny checkpoint and on broken copies of it: each problem named exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from server.checkpoint.check import ModelFormat, check_model
from server.checkpoint.identity import KNOWN, RELEASES, write_identity
from server.checkpoint.tiny import tekken


@pytest.fixture
def copy(tiny_model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_model, target)
    return target


def problems(directory: Path) -> str:
    report = check_model(directory, thorough=True)
    assert not report.ok
    return "\n".join(report.problems)


def test_the_tiny_checkpoint_passes(tiny_model: Path) -> None:
    report = check_model(tiny_model)
    assert report.ok, report.problems
    assert report.format is ModelFormat.MISTRAL


def test_missing_file(copy: Path) -> None:
    (copy / "tekken.json").unlink()
    assert "missing tekken.json" in problems(copy)


def test_a_tokenizer_mistral_common_cannot_load(copy: Path) -> None:
    """A v11 file without its special tokens: valid JSON, and vLLM's start would fail on it."""
    broken = tekken("3.2")
    del broken["special_tokens"]
    (copy / "tekken.json").write_text(json.dumps(broken))
    write_identity(copy, KNOWN[RELEASES["3.2"]])  # the version is the recorded model's: only the load fails
    assert "tekken.json does not load with mistral-common: Special tokens not found" in problems(copy)


def test_small_32_weights_with_31s_tokenizer(copy: Path) -> None:
    """Their tool calls would be read in the wrong format: the recorded model says which tokenizer it needs."""
    write_identity(copy, KNOWN[RELEASES["3.2"]])
    assert (
        "tekken.json is tokenizer v7, but served-model.json says the weights are Mistral: Mistral Small 3.2 24B, "
        "whose tokenizer is v11: copy tekken.json from mistralai/Mistral-Small-3.2-24B-Instruct-2506"
    ) in problems(copy)
    (copy / "tekken.json").write_text(json.dumps(tekken("3.2")))
    assert check_model(copy).ok


def test_truncated_safetensors(copy: Path) -> None:
    path = copy / "consolidated.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "consolidated.safetensors is truncated" in problems(copy)


def test_corrupt_safetensors_header(copy: Path) -> None:
    (copy / "consolidated.safetensors").write_bytes(b"\xff" * 64)
    assert "corrupt header" in problems(copy)


def test_wrong_shape(copy: Path) -> None:
    path = copy / "consolidated.safetensors"
    tensors = load_file(str(path))
    tensors["layers.1.attention.wk.weight"] = tensors["layers.1.attention.wk.weight"][:64]
    save_file(tensors, str(path))
    assert "tensor layers.1.attention.wk.weight has shape [64, 256], params.json implies [128, 256]" in problems(copy)


def test_missing_and_unexpected_tensors(copy: Path) -> None:
    path = copy / "consolidated.safetensors"
    tensors = load_file(str(path))
    tensors["model.extra.bias"] = tensors.pop("patch_merger.merging_layer.weight")
    save_file(tensors, str(path))
    text = problems(copy)
    assert "lacks tensor patch_merger.merging_layer.weight [64, 256]" in text
    assert "unexpected tensor model.extra.bias" in text


def test_params_not_mistral_small_shaped(copy: Path) -> None:
    params = json.loads((copy / "params.json").read_text())
    del params["vision_encoder"]
    del params["n_kv_heads"]
    (copy / "params.json").write_text(json.dumps(params))
    text = problems(copy)
    assert "params.json lacks 'n_kv_heads'" in text
    assert "vision_encoder" in text


def test_hf_files_only(tmp_path: Path) -> None:
    """An empty config.json is the HF layout, and says what it lacks (tests/checkpoint/test_hf_layout.py has the
    rest)."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")
    report = check_model(tmp_path)
    assert report.format is ModelFormat.HF
    assert "config.json's architectures are []" in report.problems[0]


def test_mixed_formats(copy: Path) -> None:
    (copy / "config.json").write_text("{}")
    assert "mixes formats" in problems(copy)


def test_empty_and_missing_directories(tmp_path: Path) -> None:
    assert "holds no model" in problems(tmp_path)
    assert "is not a directory" in problems(tmp_path / "nope")


def test_cli_exit_codes(tiny_model: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "server", "check-model", str(tiny_model)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0
    assert "mistral format" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "server", "check-model", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert "holds no model" in bad.stderr
