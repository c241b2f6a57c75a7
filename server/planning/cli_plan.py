"""`mistral-local plan`: gather the inventory (given or detected) and the model, plan, print, maybe write."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import get_args

from rich.console import Console

from server.checkpoint.quantization import WEIGHTS, Weights, checkpoint_weights
from server.engine.profiles import PlannedFor
from server.errors import ConfigError
from server.planning.gpus import catalog_gpu, known
from server.planning.hardware import detect
from server.planning.model_shape import ModelShape, read_shape, reference_shape
from server.planning.planner import Inventory, KvChoice, Plan, PlanRequest, Target, card_request, plan
from server.planning.profile_writer import profile_name, render, to_profile
from server.planning.report import print_plan


def _choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _inventory(gpu: str | None, count: int, nodes: int, memory_gib: float | None) -> Inventory:
    if gpu is not None:
        found, n = catalog_gpu(gpu), count
    else:
        detection = detect()
        inventory = detection.inventory()
        if inventory is None:
            raise ConfigError(f"no NVIDIA GPU here ({detection.why_none}); plan for one with --gpu KEY --count N")
        found, n = inventory
    if memory_gib is not None:
        found = replace(found, memory_bytes=int(memory_gib * 2**30))
    return Inventory(found, n, nodes)


def _one_node(shape: ModelShape, inventory: Inventory, request: PlanRequest) -> Plan | None:
    """The plan for one node of several, if the model fits one: then a fleet is the other way (docs/deploy.md)."""
    try:
        return plan(shape, replace(inventory, nodes=1), request)
    except ConfigError:
        return None


def best_plan(shape: ModelShape, inventory: Inventory, request: PlanRequest) -> Plan:
    """No weights asked for: the most faithful that fit (bf16, then fp8, int8, int4), each passed over said why."""
    passed: list[str] = []
    for weights in WEIGHTS:
        try:
            result = plan(shape, inventory, replace(request, weights=weights))
        except ConfigError as exc:
            passed.append(f"{weights} passed over: {str(exc).split('; try')[0]}")
            continue
        result.notes[:0] = [*passed, f"{weights}: the most faithful weights that fit"] if passed else []
        return result
    raise ConfigError("; ".join(passed))


def run_plan(
    *,
    gpu: str | None,
    count: int,
    nodes: int,
    memory_gib: float | None,
    model: Path | None,
    weights: str | None,
    target: str,
    context: int | None,
    kv_cache_dtype: str,
    images: int,
    utilization: float,
    write: Path | None,
) -> None:
    shape: ModelShape = reference_shape() if model is None else read_shape(model)
    chosen: Weights = checkpoint_weights(model) if model is not None and weights is None else "bf16"
    if weights is not None:
        chosen = _choice(weights, WEIGHTS, "--weights")  # type: ignore[assignment]
    request = PlanRequest(
        weights=chosen,
        target=_choice(target, get_args(Target), "--target"),  # type: ignore[arg-type]
        context=context,
        kv_cache_dtype=_choice(kv_cache_dtype, get_args(KvChoice), "--kv-cache-dtype"),  # type: ignore[arg-type]
        images_per_prompt=images,
        gpu_memory_utilization=utilization,
    )
    if model is not None:
        request = card_request(model, request)
    inventory = _inventory(gpu, count, nodes, memory_gib)
    result = (
        best_plan(shape, inventory, request) if weights is None and model is None else plan(shape, inventory, request)
    )
    request = result.request
    entry = known(inventory.gpu.name)
    planned = None
    if entry is not None and memory_gib is None and model is None:
        planned = PlannedFor(
            gpu=entry.key,
            count=inventory.count,
            nodes=nodes,
            weights=request.weights,
            target=request.target,
            context=context,
            kv_cache_dtype=request.kv_cache_dtype,
            images_per_prompt=images,
            gpu_memory_utilization=utilization,
        )
    name = profile_name(planned) if planned else write.stem if write else "planned"
    console = Console(width=140)
    node = _one_node(shape, inventory, request) if nodes > 1 else None
    print_plan(result, to_profile(result, name, planned), str(write) if write else "PLAN.yaml", console, node)
    if write is None:
        console.print("# (save this plan as a profile first: the same command with --write PLAN.yaml)", style="dim")
    if write is not None:
        write.write_text(render(result, name, planned), encoding="utf-8")
        console.print(f"wrote {write}")
