"""Hardware profiles: which vLLM arguments suit a hardware setup, read from `configs/profiles/*.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import ConfigError

PROFILES_DIR = Path(__file__).resolve().parents[2] / "configs" / "profiles"


class StructuredOutputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str = "xgrammar"
    disable_any_whitespace: bool = False


class PlannedFor(BaseModel):
    """The planner's inputs that produced a profile, so a test can regenerate it (`mistral-local plan`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str  # a key of server/planning/gpus.py's catalog
    count: int = Field(ge=1)
    nodes: int = Field(1, ge=1)
    weights: Literal["bf16", "fp8", "int8", "int4"] = "bf16"
    target: Literal["context", "concurrency"] = "context"
    context: int | None = Field(None, ge=256)
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = "auto"
    images_per_prompt: int = Field(4, ge=0)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)


class Profile(BaseModel):
    """One hardware setup's engine arguments. Field names follow vLLM's flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    device: Literal["cpu", "cuda"]
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    # "ray" spans nodes (pipeline parallel across machines); None: vLLM's default (multiprocessing on one node).
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    max_model_len: int = Field(ge=256)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    kv_cache_dtype: str = "auto"
    quantization: str | None = None
    max_num_seqs: int | None = Field(None, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=1)
    images_per_prompt: int = Field(4, ge=0)
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    # CPU builds only: GiB of KV cache (VLLM_CPU_KVCACHE_SPACE) and thread binding (VLLM_CPU_OMP_THREADS_BIND).
    cpu_kv_cache_space_gib: int | None = Field(None, ge=1)
    cpu_omp_threads_bind: str | None = None
    structured_outputs: StructuredOutputs | None = None
    extra_args: tuple[str, ...] = ()
    planned_for: PlannedFor | None = None


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str, directory: Path = PROFILES_DIR) -> Profile:
    """A shipped profile by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(available_profiles(directory))
        raise ConfigError(f"unknown profile {name_or_path!r}; shipped profiles: {names}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Profile.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"profile {path} is invalid: {exc}") from exc
