"""`mistral-local plan` and `check-model` (whether a checkpoint is servable, on which GPU): their flags and commands.
Heavy imports stay inside the commands, so `--help` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def plan(
    ctx: typer.Context,
    gpu: Annotated[
        str | None,
        typer.Option(
            help="GPU to plan for: a catalog key (h100, h200, a100-80gb, l40s, l4, rtx4090, …) "
            "or an nvidia-smi name. Default: this machine's GPUs."
        ),
    ] = None,
    count: Annotated[int, typer.Option(min=1, help="GPUs per node (with --gpu).")] = 1,
    nodes: Annotated[int, typer.Option(min=1, help="Nodes: pipeline parallel across them, with Ray.")] = 1,
    memory_gib: Annotated[float | None, typer.Option(help="Override the memory of each GPU (GiB).")] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Model directory or its params.json/config.json. Default: Mistral Small 3.1 24B."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="bf16, fp8, int8 or int4. Default: what the checkpoint holds.")
    ] = None,
    target: Annotated[
        str, typer.Option(help="context (longest context) or concurrency (most sequences at --context).")
    ] = "context",
    context: Annotated[
        int | None, typer.Option(help="context: an upper bound; concurrency: each sequence's context.")
    ] = None,
    kv_cache_dtype: Annotated[str, typer.Option(help="auto, bf16 or fp8.")] = "auto",
    images: Annotated[int, typer.Option(min=0, help="Images per prompt (vision encoder budget).")] = 4,
    utilization: Annotated[float, typer.Option(min=0.1, max=1.0, help="gpu_memory_utilization.")] = 0.9,
    write: Annotated[Path | None, typer.Option(help="Write the plan as a profile YAML here.")] = None,
    gpu_facts: Annotated[
        bool,
        typer.Option(
            "--gpu-facts",
            help="Print, as JSON, what GPU detection reads through NVML and through nvidia-smi and the plan "
            "`serve --profile auto` would launch here; exit 1 unless both found the same GPUs. Needs no vLLM.",
        ),
    ] = False,
) -> None:
    """Plan vLLM's arguments for the model on a set of GPUs, showing the arithmetic (and the commands to run)."""
    if gpu_facts:
        from server.planning.gpu_facts import main

        raise typer.Exit(main())
    from server.planning.cli_plan import run_plan

    run_plan(**{k: v for k, v in ctx.params.items() if k != "gpu_facts"})


def check_model_cmd(
    directory: Annotated[Path, typer.Argument(help="Model directory to check.")],
    gpu: Annotated[
        str | None,
        typer.Option(
            help="The GPU it will run on (a catalog key such as rtx4090 or l4, or an nvidia-smi name), which must "
            "have a vLLM kernel for the checkpoint's weights. Default: this machine's GPU, if it has one."
        ),
    ] = None,
) -> None:
    """Check that a directory holds a servable Mistral Small 3.x checkpoint (Mistral-native, or Hugging Face layout
    with tekken.json, quantized or not); say exactly what is wrong."""
    from server.checkpoint.check import check_model
    from server.checkpoint.quantization import checkpoint_weights
    from server.planning.gpus import catalog_gpu
    from server.planning.hardware import detect

    target = catalog_gpu(gpu) if gpu is not None else next(iter(detect().gpus), None)
    report = check_model(directory, gpu=(target.name, target.compute_capability) if target else None, thorough=True)
    if not report.ok:
        for problem in report.problems:
            typer.secho(f"✗ {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    weights = checkpoint_weights(directory)
    on = f", runs on {target.name}" if target else ""
    typer.echo(f"✓ {directory}: {report.format} format, {weights} weights, {report.parameters / 1e9:.3f} B values{on}")
