"""check-model on the Hugging Face layout: the scaled-down checkpoint written by transformers' own Mistral3 classes
passes, and broken copies of it are named exactly (a missing shard, a tensor its index misplaces, the wrong
architecture, no tekken.json, a quantization nobody plans for, one the GPU has no kernel for)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from server.checkpoint.check import ModelFormat, check_model
from server.checkpoint.hf_layout import mistral_view
from server.checkpoint.quantization import checkpoint_weights
from server.checkpoint.tiny import TINY_PARAMS, write_tiny_hf
from server.planning.model_shape import read_shape, shape_from_params

W4A16 = {
    "quant_method": "compressed-tensors",
    "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "group_size": 128}}},
}
T4 = ("NVIDIA T4", (7, 5))
L4 = ("NVIDIA L4", (8, 9))


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hf(tmp_path_factory.mktemp("tiny-hf") / "model", shard_bytes=60_000_000)


@pytest.fixture
def copy(tiny_hf: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_hf, tmp_path / "model"))


def edit_config(directory: Path, **changes: Any) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | changes))


def problems(directory: Path, gpu: tuple[str, tuple[int, int]] | None = None) -> str:
    report = check_model(directory, gpu=gpu)
    assert not report.ok
    return "\n".join(report.problems)


def test_the_hf_layout_passes_and_is_the_same_model(tiny_hf: Path) -> None:
    report = check_model(tiny_hf, gpu=L4)
    assert report.ok, report.problems
    assert report.format is ModelFormat.HF
    native = shape_from_params(TINY_PARAMS, "native")
    assert report.parameters == native.parameters  # every tensor of the native layout, under HF names
    hf = read_shape(tiny_hf)  # the planner reads it alike; its config states its context, the native one does not
    assert replace(hf, max_context=0) == replace(shape_from_params(TINY_PARAMS, tiny_hf.name), max_context=0)
    assert hf.max_context == 131072
    index = json.loads((tiny_hf / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1  # sharded, as real checkpoints are


def test_a_missing_shard_and_a_misplaced_tensor(copy: Path) -> None:
    index = json.loads((copy / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    (copy / shards[-1]).unlink()
    assert f"{shards[-1]}, listed in model.safetensors.index.json, is missing" in problems(copy)
    index["weight_map"]["lm_head.weight"] = shards[0]
    (copy / "model.safetensors.index.json").write_text(json.dumps(index))
    assert f"{shards[0]} lacks tensor lm_head.weight, which model.safetensors.index.json puts there" in problems(copy)


def test_the_wrong_architecture(copy: Path) -> None:
    edit_config(copy, architectures=["LlamaForCausalLM"])
    said = problems(copy)
    assert (
        "config.json's architectures are ['LlamaForCausalLM']: Mistral Small 3.x is Mistral3ForConditionalGeneration"
        in said
    )


def test_no_tekken_json(copy: Path) -> None:
    (copy / "tekken.json").unlink()
    assert "has no tekken.json: mistral-local serves Mistral Small 3.x with mistral-common's tokenizer" in problems(
        copy
    )


def test_quantizations_known_unknown_and_without_a_kernel(copy: Path) -> None:
    edit_config(copy, quantization_config=W4A16)
    assert checkpoint_weights(copy) == "int4"
    assert check_model(copy, gpu=L4).ok  # Marlin W4A16 on Ada
    assert "NVIDIA T4 (compute capability 7.5) has no vLLM kernel for int4 weights" in problems(copy, gpu=T4)
    w8a8 = {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8, "type": "int"}}}}
    edit_config(copy, quantization_config=w8a8)
    assert checkpoint_weights(copy) == "int8" and check_model(copy, gpu=T4).ok  # CUTLASS INT8 from Turing
    edit_config(copy, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    assert "is not one mistral-local plans for" in problems(copy)


def test_an_hf_checkpoint_that_also_carries_params_json_is_hf(copy: Path) -> None:
    """As RedHatAI's quantized repositories do: their weights are the HF shards."""
    (copy / "params.json").write_text(json.dumps(TINY_PARAMS))
    report = check_model(copy)
    assert report.ok and report.format is ModelFormat.HF


def test_cli_names_the_gpu_and_its_missing_kernel(copy: Path) -> None:
    edit_config(copy, quantization_config=W4A16)
    cli = [sys.executable, "-m", "server", "check-model", str(copy)]
    ok = subprocess.run([*cli, "--gpu", "rtx4090"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "hf format, int4 weights" in ok.stdout and "runs on NVIDIA GeForce RTX 4090" in ok.stdout
    old = subprocess.run([*cli, "--gpu", "Tesla T4"], capture_output=True, text=True, check=False)
    assert old.returncode == 1 and "has no vLLM kernel for int4 weights" in old.stderr


def test_the_view_gives_vllm_a_params_json_over_the_same_files(copy: Path, tmp_path: Path) -> None:
    edit_config(copy, quantization_config=W4A16)
    view = mistral_view(copy, tmp_path / "views")
    assert view.stat().st_mode & 0o777 == 0o700 and (tmp_path / "views").stat().st_mode & 0o077 == 0
    linked = {p.name: p.resolve() for p in view.iterdir() if p.is_symlink()}
    assert linked == {p.name: p.resolve() for p in copy.iterdir()}  # every file, none copied
    params = json.loads((view / "params.json").read_text())
    assert params["quantization"] == W4A16  # vLLM's Mistral config passes compressed-tensors through
    assert shape_from_params(params, copy.name) == read_shape(copy)  # the same model, its context included
    assert mistral_view(copy, tmp_path / "views") == view  # the same place each time, made anew
    (copy / "params.json").write_text(json.dumps(params))
    assert mistral_view(copy, tmp_path / "views") == copy  # a directory with its own params.json is served as is
    (copy / "params.json").write_text(json.dumps({k: v for k, v in params.items() if k != "quantization"}))
    fixed = mistral_view(copy, tmp_path / "views")  # ... unless it lacks config.json's quantization
    assert fixed == view and json.loads((fixed / "params.json").read_text())["quantization"] == W4A16


def test_the_w8a8_layout_is_int8_weights_with_their_scales(tiny_hf: Path, tmp_path: Path) -> None:
    """As RedHatAI's -quantized.w8a8: the decoder's 7 linear layers a block in INT8, a scale per output channel,
    the rest 16-bit; each weight within half a step of the 16-bit one; runs on Turing (CUTLASS INT8)."""
    import torch
    from safetensors.torch import load_file

    w8a8 = write_tiny_hf(tmp_path / "w8a8", quantized="w8a8")
    report = check_model(w8a8, gpu=T4)
    assert report.ok, report.problems
    assert checkpoint_weights(w8a8) == "int8"
    plain = {k: v for f in sorted(tiny_hf.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    quantized = {k: v for f in sorted(w8a8.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    int8 = sorted(k for k, v in quantized.items() if v.dtype == torch.int8)
    assert len(int8) == 7 * TINY_PARAMS["n_layers"] and all(".layers." in k and "vision" not in k for k in int8)
    for name in int8:
        scale = quantized[name.removesuffix(".weight") + ".weight_scale"].float()
        error = (quantized[name].float() * scale - plain[name].float()).abs()
        assert bool((error <= scale * 0.5 + 1e-3).all()), name
    assert {k for k in quantized if k not in plain} == {k.removesuffix(".weight") + ".weight_scale" for k in int8}


def test_the_w4a16_layout_is_packed_int4_groups_with_their_scales(tiny_hf: Path, tmp_path: Path) -> None:
    """As RedHatAI's -quantized.w4a16: each decoder linear weight packed eight to an int32, a scale per 128 inputs of
    an output channel, its shape beside it; each value within half a step of the 16-bit one; Ampere or later."""
    import torch
    from compressed_tensors.compressors import unpack_from_int32
    from safetensors.torch import load_file

    w4a16 = write_tiny_hf(tmp_path / "w4a16", quantized="w4a16")
    assert check_model(w4a16, gpu=L4).ok and checkpoint_weights(w4a16) == "int4"
    assert "NVIDIA T4 (compute capability 7.5) has no vLLM kernel for int4 weights" in "".join(
        check_model(w4a16, gpu=T4).problems
    )
    plain = {k: v for f in sorted(tiny_hf.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    quantized = {k: v for f in sorted(w4a16.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    packed = sorted(k for k in quantized if k.endswith(".weight_packed"))
    assert len(packed) == 7 * TINY_PARAMS["n_layers"] and all("vision" not in k for k in packed)
    for name in packed:
        base = name.removesuffix("_packed")
        shape = torch.Size(quantized[base + "_shape"].tolist())
        assert shape == plain[base].shape and quantized[name].shape == (shape[0], shape[1] // 8)
        values = unpack_from_int32(quantized[name], 4, shape).float()
        scale = quantized[base + "_scale"].float().repeat_interleave(128, dim=1)
        assert bool(((values * scale - plain[base].float()).abs() <= scale * 0.5 + 1e-3).all()), name
        assert base not in quantized  # the 16-bit weight is gone
