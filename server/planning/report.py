"""The plan as people read it: a table that shows the arithmetic, the flags, and the commands to run."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table

from server.checkpoint.check import ModelFormat
from server.engine.launcher import build_command
from server.engine.profiles import Profile
from server.engine.vllm_release import PINNED_RELEASE
from server.planning.gpus import known
from server.planning.planner import ACTIVATION_ALLOWANCE, GB, Plan

KIB = 1024
SEQUENCE_SIZES = (("4k", 4096), ("32k", 32768), ("128k", 128_000))


def _sequences(p: Plan) -> str:
    return " / ".join(str(n) if (n := p.sequences_at(size)) is not None else "—" for _, size in SEQUENCE_SIZES)


def plan_table(p: Plan) -> Table:
    gpu, shape, req = p.inventory.gpu, p.shape, p.request
    ranks = f"TP {p.tensor_parallel} × PP {p.pipeline_parallel}"
    per_step = shape.decode_bytes_per_step(req.weights)
    weights = shape.weight_bytes(req.weights) / GB
    usable = f"{req.gpu_memory_utilization:.2f} × {gpu.memory_bytes / GB:.1f} GB = {p.usable_per_gpu / GB:.1f} GB"
    vision = f"{p.vision_bytes / GB:.2f} GB ({shape.tokens_per_image} tokens per max-size image)"
    kv_sizes = [f"{shape.kv_bytes_per_token(kv) / KIB:.0f} KiB {kv}" for kv in ("bf16", "fp8")]
    ceiling = (
        f"{p.decode_ceiling_tok_s:.0f} tok/s = {gpu.bandwidth_bytes_s / 1e12:.2f} TB/s × TP {p.tensor_parallel}"
        f" / {per_step / GB:.1f} GB per step"
    )
    chosen = (
        f"TP {p.tensor_parallel}, PP {p.pipeline_parallel}, DP {p.data_parallel}, max_model_len {p.max_model_len}, "
        f"kv_cache_dtype {p.kv_dtype}, max_num_seqs {p.max_num_seqs}"
    )
    rows = [
        ("parameters", f"{shape.parameters / 1e9:.2f} B"),
        (f"weights ({req.weights})", f"{weights:.1f} GB; {p.weights_per_gpu / GB:.1f} GB per GPU ({ranks})"),
        ("usable per GPU", usable),
        ("activations, CUDA graphs", f"{ACTIVATION_ALLOWANCE / GB:.1f} GB per GPU (allowance; vLLM measures the peak)"),
        (f"vision encoder ({req.images_per_prompt} images)", vision),
        ("KV cache room per GPU", f"{p.kv_room_per_gpu / GB:.1f} GB"),
        ("KV per token", ", ".join(kv_sizes)),
        (f"KV tokens per replica ({p.kv_dtype})", f"{p.kv_tokens:,}"),
        ("sequences at 4k / 32k / 128k", _sequences(p)),
        ("decode ceiling, batch 1", ceiling),
        ("chosen", chosen),
    ]
    nodes = f" per node, {p.inventory.nodes} nodes" if p.inventory.nodes > 1 else ""
    table = Table(title=f"{shape.name} on {p.inventory.count} × {gpu.name}{nodes}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    return table


def commands(p: Plan, profile: Profile, profile_ref: str, model_dir: str = "/models/mistral-small-3.1") -> list[str]:
    """Shell lines to run the plan; several nodes get the Ray cluster steps first."""
    serve = f"mistral-local serve --model {model_dir} --profile {shlex.quote(profile_ref)}"
    engine = build_command(
        profile,
        Path(model_dir),
        ModelFormat.MISTRAL,
        ["MODEL"],
        url="unix:PRIVATE_DIR/engine.sock",
        api_key="",
        release=PINNED_RELEASE,
        reasoning=p.request.reasoning,
    )
    lines = []
    if p.inventory.nodes > 1:
        lines += [
            "# Every node: the same weights at the same path, the same image or install, one network interface",
            "# (export NCCL_SOCKET_IFNAME=IFACE GLOO_SOCKET_IFNAME=IFACE, and VLLM_HOST_IP=this node's address).",
            "# Head node:",
            "ray start --head --port=6379",
            f"# Each of the {p.inventory.nodes - 1} worker node(s):",
            "ray start --address=HEAD_IP:6379",
            "# Head node, once `ray status` lists every GPU:",
        ]
    lines += [
        serve,
        "# which launches (engine key in VLLM_API_KEY, not argv):",
        shlex.join(["python", *engine.argv[1:]]),
    ]
    return lines


def fleet_commands(node: Plan, nodes: int, model_dir: str = "/models/mistral-small-3.1") -> list[str]:
    """Shell lines for the other way to use several nodes when the model fits one: a fleet, one engine per node
    (with the node plan's replicas inside it), one gateway routing each conversation to one of them."""
    entry, count = known(node.inventory.gpu.name), node.inventory.count
    gpu = entry.key if entry is not None else shlex.quote(node.inventory.gpu.name)
    lines = [
        f"# Or, since the model fits one node: a fleet of {nodes} engines, one per node "
        f"(TP {node.tensor_parallel}, DP {node.data_parallel} inside each), one gateway in front (docs/deploy.md).",
        f"# Every node: mistral-local plan --gpu {gpu} --count {count} --write node.yaml, then:",
    ]
    lines += [
        f"mistral-local engine --model {model_dir} --profile node.yaml --host NODE{i}_IP --port 8100"
        f"   # node {i}: prints its key file"
        for i in range(1, nodes + 1)
    ]
    entries = ", ".join(f"{{url: 'http://NODE{i}_IP:8100', api_key_file: node{i}.key}}" for i in range(1, nodes + 1))
    lines += [
        "# The gateway (its keys file, and each node's key file copied beside it):",
        f'echo "engines: [{entries}]" > fleet.yaml',
        "mistral-local serve --host 0.0.0.0 --keys-file keys.yaml --fleet-file fleet.yaml --workers 4",
    ]
    return lines


def print_plan(p: Plan, profile: Profile, profile_ref: str, console: Console, node: Plan | None = None) -> None:
    """`node`: the plan for one of several nodes, when the model fits one (a fleet is printed too)."""
    console.print(plan_table(p))
    for note in p.notes:
        console.print(f"• {note}")
    console.print()
    lines = commands(p, profile, profile_ref)
    if node is not None:
        lines += ["", *fleet_commands(node, p.inventory.nodes)]
    for line in lines:
        console.print(line, style="dim" if line.startswith("#") else None, highlight=False, soft_wrap=True)
