"""`mistral-local bench`: the load benchmark (its flags below), and the measurements beside it as subcommands, each
with its own flags (`mistral-local bench overhead --help`). Heavy imports stay inside the commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Benchmark a chat endpoint, or measure the gateway (subcommands).")
# The subcommands below parse their own arguments (argparse): everything after the name goes to them, --help too.
OWN_FLAGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    base_url: Annotated[
        str, typer.Option(help="Target API base: this server, a vLLM engine, or OpenRouter.")
    ] = "http://127.0.0.1:8000/api/v1",
    api_key: Annotated[
        str,
        typer.Option(envvar="MISTRAL_LOCAL_BENCH_API_KEY", help="The target's key (env MISTRAL_LOCAL_BENCH_API_KEY)."),
    ] = "",
    model: Annotated[str, typer.Option(help="Model id to request.")] = "mistralai/mistral-small-3.1-24b-instruct",
    label: Annotated[str, typer.Option(help="Name of the target in tables and plots.")] = "A",
    compare: Annotated[
        str | None,
        typer.Option(help="Second target's base URL: the same requests, interleaved, as ratios to the first."),
    ] = None,
    compare_api_key: Annotated[str, typer.Option(envvar="MISTRAL_LOCAL_BENCH_COMPARE_API_KEY")] = "",
    compare_model: Annotated[str | None, typer.Option(help="Model id at the second target (default: --model).")] = None,
    compare_label: Annotated[str, typer.Option()] = "B",
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds per comparison (order alternates).")] = 4,
    dataset: Annotated[
        str,
        typer.Option(
            help="random, image, sharegpt, or multi-turn (--num-prompts conversations of --turns turns, a shared "
            "system prompt of --prefix-len tokens, user turns of --input-len)."
        ),
    ] = "random",
    sharegpt_path: Annotated[
        Path | None, typer.Option(help="ShareGPT-format JSON file (with --dataset sharegpt).")
    ] = None,
    input_len: Annotated[int, typer.Option(min=1, help="Prompt tokens (Tekken).")] = 1024,
    output_len: Annotated[int, typer.Option(min=1, help="Output tokens (max_tokens).")] = 128,
    turns: Annotated[int, typer.Option(min=1, help="Turns per conversation (--dataset multi-turn).")] = 5,
    range_ratio: Annotated[float, typer.Option(min=0, max=1, help="Lengths uniform in [L(1-r), L(1+r)].")] = 0.0,
    prefix_len: Annotated[int, typer.Option(min=0, help="Tokens of a prefix every prompt shares.")] = 0,
    image_size: Annotated[str, typer.Option(help="WIDTHxHEIGHT of generated images (--dataset image).")] = "512x512",
    images: Annotated[int, typer.Option(min=1, help="Images per request (--dataset image).")] = 1,
    num_prompts: Annotated[int, typer.Option(min=1, help="Requests per run.")] = 100,
    duration: Annotated[float | None, typer.Option(help="Stop sending after this many seconds.")] = None,
    max_concurrency: Annotated[str, typer.Option(help="Concurrency caps to sweep, e.g. 1,4,16,64 (inf: none).")] = "1",
    request_rate: Annotated[float, typer.Option(help="Requests per second (inf: all at once).")] = float("inf"),
    burstiness: Annotated[float, typer.Option(help="Gamma shape of arrivals: 1 Poisson, <1 burstier.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Same seed, same requests.")] = 0,
    warmups: Annotated[int, typer.Option(min=0, help="Requests sent (and not measured) before each run.")] = 1,
    ignore_eos: Annotated[bool, typer.Option(help="Ask for exactly --output-len tokens (vLLM targets).")] = True,
    slo: Annotated[list[str] | None, typer.Option(help="Goodput limit, repeatable: ttft:MS, tpot:MS, e2el:MS.")] = None,
    ready_timeout: Annotated[float, typer.Option(help="Wait up to this many seconds for the target.")] = 0.0,
    tokenizer: Annotated[Path | None, typer.Option(help="tekken.json (default: mistral-common's Tekken v7).")] = None,
    out: Annotated[Path, typer.Option(help="Directory for results.json, report.md and the plots.")] = Path(
        "bench-results"
    ),
) -> None:
    """Benchmark a chat endpoint with vLLM's metric definitions (TTFT, TPOT, ITL, E2EL, throughput, goodput)."""
    if ctx.invoked_subcommand is not None:
        return
    from server.bench.run import options_from_flags, run_bench

    run_bench(options_from_flags(ctx.params))


@app.command(context_settings=OWN_FLAGS)
def overhead(ctx: typer.Context) -> None:
    """What the gateway costs over the engine alone, beside LiteLLM's proxy and a bare TCP relay."""
    from server.bench.overhead.run import cli

    cli(ctx.args)


@app.command("synthetic-engine", context_settings=OWN_FLAGS)
def synthetic_engine(ctx: typer.Context) -> None:
    """A stand-in for vLLM's OpenAI server on loopback that streams vLLM's own chunk bytes at a set rate."""
    from server.bench.synthetic_engine import cli

    cli(ctx.args)


@app.command("tcp-relay", context_settings=OWN_FLAGS)
def tcp_relay(ctx: typer.Context) -> None:
    """A byte relay with no HTTP: the floor for any Python front."""
    from server.bench.overhead.tcp_relay import cli

    cli(ctx.args)


@app.command(context_settings=OWN_FLAGS)
def affinity(ctx: typer.Context) -> None:
    """What session affinity buys on two engines: prefix-cache hit rates and TTFT, affinity against round-robin."""
    from server.bench.affinity import main

    main(ctx.args)


@app.command("start-time", context_settings=OWN_FLAGS)
def start_time(ctx: typer.Context) -> None:
    """Seconds from `serve` to ready, and the resident memory of each process: start-time [PROFILE]."""
    from server.bench.start_time import main

    main(*ctx.args)


@app.command("vllm-serve", context_settings=OWN_FLAGS)
def vllm_serve(ctx: typer.Context) -> None:
    """`vllm bench serve`, where the CPU build's `vllm` command cannot run (same arguments, same code)."""
    from server.bench.vllm_serve import cli

    cli(ctx.args)


@app.command("dp-loopback", context_settings=OWN_FLAGS)
def dp_loopback(ctx: typer.Context) -> None:
    """vLLM's multi-node data parallelism as two ranks on loopback, a gateway attached to rank 0 (CPU stack)."""
    script = Path(__file__).with_name("dp_loopback.sh")
    raise typer.Exit(subprocess.run(["bash", str(script), *ctx.args], check=False, stdin=sys.stdin).returncode)
