"""`check-model`: decide a model directory's format from its files and verify it before the engine sees it.

vLLM's own failures for a wrong directory are stack traces deep in its loader (assertions in `load_params_config`,
"Found 0 files matching tekken.json", shape mismatches after minutes of loading). Here each problem is one sentence.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.checkpoint.hf_layout import INDEX, config_and_problems, shard_map
from server.checkpoint.layout import HF_MARKERS, MISTRAL_FILES, WEIGHTS_FILE, config_problems, expected_tensors
from server.checkpoint.quantization import checkpoint_weights, kernel_refusal
from server.checkpoint.tokenizer import loading_problems, read_tokenizer

# A safetensors file starts with an 8-byte little-endian header length, then that many bytes of JSON.
_HEADER_LEN_BYTES = 8
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "I32": 4, "F64": 8}


class ModelFormat(enum.StrEnum):
    MISTRAL = "mistral"
    HF = "hf"


@dataclass
class ModelReport:
    directory: Path
    format: ModelFormat | None
    problems: list[str] = field(default_factory=list)
    parameters: int = 0
    tokenizer_version: int = 0  # tekken.json's ("v11": 11)
    reasoning: bool = False  # tekken.json has [THINK] and [/THINK] (Magistral)

    @property
    def ok(self) -> bool:
        return not self.problems


def detect_format(directory: Path, weights: bool = True) -> tuple[ModelFormat | None, list[str]]:
    """The directory's format, from the files present; problems when it is neither, or both. `weights` False: the
    engine makes random ones (vLLM's dummy load format), so only the config and the tokenizer must be there."""
    if not directory.is_dir():
        return None, [f"{directory} is not a directory"]
    names = {p.name for p in directory.iterdir()}
    mistral_present = [f for f in MISTRAL_FILES if f in names]
    hf_present = [f for f in HF_MARKERS if f in names]
    if hf_present and WEIGHTS_FILE not in names:  # RedHatAI's HF checkpoints carry a params.json too
        return ModelFormat.HF, []
    if mistral_present and hf_present:
        return None, [
            f"{directory} mixes formats: Mistral-native files ({', '.join(mistral_present)}) and Hugging Face "
            f"files ({', '.join(hf_present)}). Keep one format per directory; Mistral-native is the recommended one."
        ]
    if mistral_present:
        missing = [f for f in MISTRAL_FILES if f not in names and (weights or f != WEIGHTS_FILE)]
        problems = [
            f"{directory} is missing {f} (a Mistral-native checkpoint needs {', '.join(MISTRAL_FILES)})"
            for f in missing
        ]
        return ModelFormat.MISTRAL, problems
    return None, [
        f"{directory} holds no model: expected {', '.join(MISTRAL_FILES)} (Mistral-native format) or config.json, "
        "its safetensors shards and tekken.json (Hugging Face layout)"
    ]


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; ValueError naming what is wrong with it."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw_len = f.read(_HEADER_LEN_BYTES)
        if len(raw_len) < _HEADER_LEN_BYTES:
            raise ValueError(f"{path.name} is too short to be a safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > min(_MAX_HEADER_BYTES, size - _HEADER_LEN_BYTES):
            raise ValueError(f"{path.name} has a corrupt header (declares {header_len} header bytes)")
        try:
            header: dict[str, Any] = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path.name} has a corrupt header ({exc})") from exc
    data_bytes = size - _HEADER_LEN_BYTES - header_len
    header.pop("__metadata__", None)
    end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    if end > data_bytes:
        raise ValueError(f"{path.name} is truncated: its header needs {end} bytes of tensor data, it has {data_bytes}")
    return header


def _tensor_problems(header: dict[str, Any], params: dict[str, Any]) -> list[str]:
    expected = expected_tensors(params)
    problems = [
        f"consolidated.safetensors lacks tensor {name} {list(shape)}"
        for name, shape in expected.items()
        if name not in header
    ]
    for name, info in header.items():
        shape = tuple(info["shape"])
        if name not in expected:
            problems.append(f"consolidated.safetensors has unexpected tensor {name} {list(shape)}")
        elif shape != expected[name]:
            problems.append(f"tensor {name} has shape {list(shape)}, params.json implies {list(expected[name])}")
        elif info["dtype"] not in _DTYPE_BYTES:
            problems.append(f"tensor {name} has unsupported dtype {info['dtype']}")
    return problems


def _tokenizer(directory: Path, report: ModelReport) -> list[str]:
    """The tokenizer's facts into the report; its problems returned."""
    tokenizer = read_tokenizer(directory)
    report.tokenizer_version, report.reasoning = tokenizer.version, tokenizer.reasoning
    return tokenizer.problems


def _check_mistral(directory: Path, report: ModelReport, weights: bool) -> None:
    try:
        params = json.loads((directory / "params.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        report.problems.append(f"params.json cannot be read as JSON ({exc})")
        return
    if not isinstance(params, dict):
        report.problems.append("params.json is not a JSON object")
        return
    report.problems += config_problems(params) + _tokenizer(directory, report)
    if report.problems or not weights:
        return
    try:
        header = read_safetensors_header(directory / WEIGHTS_FILE)
    except (OSError, ValueError) as exc:
        report.problems.append(str(exc))
        return
    report.problems += _tensor_problems(header, params)
    report.parameters = sum(_numel(info["shape"]) for info in header.values())


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _check_hf(directory: Path, report: ModelReport, weights: bool) -> None:
    _, problems = config_and_problems(directory)
    report.problems += problems + _tokenizer(directory, report)
    if report.problems or not weights:
        return
    shards, missing = shard_map(directory)
    report.problems += missing
    for name, listed in sorted(shards.items()):
        if not (directory / name).is_file():
            continue
        try:
            header = read_safetensors_header(directory / name)
        except (OSError, ValueError) as exc:
            report.problems.append(str(exc))
            continue
        report.problems += [f"{name} lacks tensor {t}, which {INDEX} puts there" for t in listed if t not in header]
        report.parameters += sum(_numel(info["shape"]) for info in header.values())


def check_model(
    directory: Path, weights: bool = True, gpu: tuple[str, tuple[int, int]] | None = None, thorough: bool = False
) -> ModelReport:
    """Everything wrong with `directory` as a model for this server; `report.ok` when nothing is. `weights` False:
    the engine will make random weights (qualification): none are looked for. `gpu` (name, compute capability):
    the GPU it is meant for, which must have a vLLM kernel for the checkpoint's weights. `thorough`: also load the
    tokenizer as vLLM will (`check-model`, `fetch-weights`, `make-tiny`; the launcher leaves that to vLLM)."""
    fmt, problems = detect_format(directory, weights)
    report = ModelReport(directory=directory, format=fmt, problems=problems)
    if fmt is ModelFormat.MISTRAL and not problems:
        _check_mistral(directory, report, weights)
    elif fmt is ModelFormat.HF:
        _check_hf(directory, report, weights)
    if thorough and report.ok:
        report.problems += loading_problems(directory)
    if gpu is not None and report.ok:
        refusal = kernel_refusal(checkpoint_weights(directory), *gpu)
        report.problems += [refusal] if refusal else []
    return report
