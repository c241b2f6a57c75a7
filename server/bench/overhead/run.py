"""What the gateway costs. The same load goes to an engine directly and through a front (this gateway, or LiteLLM's
proxy as the peer), interleaved (`mistral-local bench --compare` underneath). Reports added TTFT p50/p99, the
throughput ratio, and the front's CPU time per streamed chunk and per request, read from the OS for the front's
processes (robust on a noisy machine, where wall-clock figures are not). The first token is the first chunk with
text on every side (vLLM's role-only opening chunk, which the gateway does not send, would flatter the engine).

Engines: `synthetic`, an OpenAI-compatible stand-in on loopback that streams vLLM's own chunk bytes at a set rate,
so the front is the bottleneck; `cpu`, the real vLLM engine on the scaled-down checkpoint, supervised by the gateway.

    mistral-local bench overhead --engine synthetic --concurrency 1,64 --peers litellm,tcp-relay
    mistral-local bench overhead --engine cpu --concurrency 32 --tokens 64 --prompts 128
    mistral-local bench overhead --engine synthetic --concurrency 64,256 --workers 4
    mistral-local bench overhead --engine synthetic --concurrency 1,64 --peers baseline,traced --baseline REV
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from server.bench.client import Target
from server.bench.compare import compare
from server.bench.load import LoadShape, Run, run_load
from server.bench.overhead.fronts import (
    KEY,
    REPO,
    Front,
    baseline_gateway,
    gateway_env,
    gateway_worker,
    litellm_proxy,
    process,
    target,
    tcp_relay,
    traced_gateway,
)
from server.bench.overhead.targets import summary
from server.bench.workload import BenchRequest, Tokenizer, random_requests
from server.serving import free_port
from server.settings import OPENROUTER_MODEL_ID


async def measured(front: Front | None, target: Target, reqs: list[BenchRequest], shape: LoadShape,
                   cpu: dict[str, float]) -> Run:  # fmt: skip
    """A run; when it goes through the front, the front's CPU seconds during it are added to `cpu`."""
    before = front.cpu_seconds() if front and target is front.target else None
    run = await run_load(target, reqs, shape)
    if front and before is not None:
        cpu["seconds"] += front.cpu_seconds() - before
        cpu["requests"] += sum(1 for o in run.outcomes if o.ok)
        cpu["chunks"] += sum(o.output_tokens for o in run.outcomes if o.ok)
    return run


async def side_by_side(engine: Target, front: Front, args: argparse.Namespace, tok: Tokenizer) -> dict[str, Any]:
    make = {"n": args.prompts, "input_len": 32, "output_len": args.tokens, "range_ratio": args.range_ratio,
            "prefix_len": 0}  # fmt: skip
    loads = (random_requests(tok, seed=0, **make), random_requests(tok, seed=0, content_seed=1, **make))
    report: dict[str, Any] = {}
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        cpu = {"seconds": 0.0, "requests": 0.0, "chunks": 0.0}

        async def runner(t: Target, reqs: list[BenchRequest], s: LoadShape, cpu: dict[str, float] = cpu) -> Run:
            return await measured(front, t, reqs, s, cpu)

        done = await compare((engine, front.target), loads, LoadShape(max_concurrency=concurrency), args.rounds,
                             runner=runner)  # fmt: skip
        report[f"c{concurrency}"] = row = {
            "added_ttft_p50_ms": done.b["median_ttft_ms"] - done.a["median_ttft_ms"],
            "added_ttft_p99_ms": done.b["p99_ttft_ms"] - done.a["p99_ttft_ms"],
            "throughput_ratio": done.ratios["output_throughput"]["pooled"],
            "throughput_ratio_rounds": done.ratios["output_throughput"],
            "cpu_us_per_chunk": 1e6 * cpu["seconds"] / max(cpu["chunks"], 1),
            "cpu_us_per_request": 1e6 * cpu["seconds"] / max(cpu["requests"], 1),
            "direct_output_throughput": done.a["output_throughput"],
            "failed": done.a["failed"] + done.b["failed"],
        }
        print(f"{front.label} c={concurrency}: {json.dumps(row)}", flush=True)
    return report


@contextmanager
def synthetic_stack(args: argparse.Namespace) -> Iterator[tuple[Target, Front]]:
    port, gateway_port = free_port(), free_port()
    longest = math.ceil(args.tokens * (1 + args.range_ratio))
    engine_cmd = [sys.executable, "-m", "server.bench.synthetic_engine", "--port", str(port), "--tokens",
                  str(longest), "--interval-ms", str(args.interval_ms), "--model", OPENROUTER_MODEL_ID]  # fmt: skip
    gateway_cmd = [sys.executable, "-m", "server", "serve", "--port", str(gateway_port), "--workers", str(args.workers)]
    with ExitStack() as stack:
        stack.enter_context(process(engine_cmd, "synthetic-engine", f"http://127.0.0.1:{port}/health"))
        url = f"http://127.0.0.1:{port}"
        ready = f"http://127.0.0.1:{gateway_port}/health/ready"
        pid = stack.enter_context(process(gateway_cmd, "gateway", ready, gateway_env(url)))
        engine = target(f"{url}/v1", OPENROUTER_MODEL_ID, KEY, "engine")
        through = target(f"http://127.0.0.1:{gateway_port}/api/v1", OPENROUTER_MODEL_ID, "", "gateway")
        yield engine, Front("gateway", through, pid, counts=gateway_worker)


@contextmanager
def cpu_stack(args: argparse.Namespace) -> Iterator[tuple[Target, Front]]:
    """The gateway supervising the real engine; only the gateway's own process is counted, not the engine's."""
    engine_port, gateway_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "server", "serve", "--profile", "cpu-tiny", "--port", str(gateway_port),
           "--engine-port", str(engine_port), "--workers", str(args.workers)]  # fmt: skip
    with process(cmd, "gateway-cpu", f"http://127.0.0.1:{gateway_port}/health/ready", gateway_env(None)) as pid:
        served = httpx.get(f"http://127.0.0.1:{engine_port}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        engine = target(f"http://127.0.0.1:{engine_port}/v1", served.json()["data"][0]["id"], KEY, "engine")
        through = target(f"http://127.0.0.1:{gateway_port}/api/v1", OPENROUTER_MODEL_ID, "", "gateway")
        yield engine, Front("gateway", through, pid, counts=gateway_worker)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tok = Tokenizer.default(REPO / ".cache")
    report: dict[str, Any] = {"engine": args.engine, "tokens": args.tokens, "prompts": args.prompts,
                              "rounds": args.rounds, "workers": args.workers, "machine": machine()}  # fmt: skip
    report["range_ratio"] = args.range_ratio
    if args.engine == "synthetic":
        report["interval_ms"] = args.interval_ms
    stack = synthetic_stack if args.engine == "synthetic" else cpu_stack
    with stack(args) as (engine, gateway), sampled(gateway.pid, args.py_spy, args.workers > 1):
        report["gateway"] = await side_by_side(engine, gateway, args, tok)
        for name in args.peers.split(",") if args.peers else []:
            with peer_front(name, engine, args) as peer:
                report[name] = await side_by_side(engine, peer, args, tok)
    report["targets"] = summary(report)
    return report


@contextmanager
def sampled(pid: int, out: Path | None, workers: bool) -> Iterator[None]:
    """py-spy samples the gateway while it runs (collapsed stacks: one line per stack, with its sample count), and
    its worker processes when it has some."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or "py-spy"
    cmd = [spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking", "-o", str(out)]
    cmd += ["--subprocesses"] if workers else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def peer_front(name: str, engine: Target, args: argparse.Namespace) -> AbstractContextManager[Front]:
    peers: dict[str, Callable[[], AbstractContextManager[Front]]] = {
        "litellm": lambda: litellm_proxy(engine),
        "tcp-relay": lambda: tcp_relay(engine),
        "baseline": lambda: baseline_gateway(engine, args.baseline, args.workers),
        "traced": lambda: traced_gateway(engine, args.workers),
    }
    return peers[name]()


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d")}


def cli(argv: list[str] | None = None) -> None:
    """`mistral-local bench overhead`: its flags are this parser's."""
    parser = argparse.ArgumentParser(
        prog="mistral-local bench overhead", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("synthetic", "cpu"), default="synthetic")
    parser.add_argument(
        "--peers",
        default="",
        help="fronts measured after the gateway: litellm, tcp-relay, baseline, traced (comma list)",
    )
    parser.add_argument("--baseline", default="HEAD", help="the git revision the `baseline` peer runs")
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument(
        "--range-ratio",
        type=float,
        default=0.0,
        help="lengths vary by ± this fraction (0: all equal, so requests start and end in waves of --concurrency)",
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="the gateway's worker processes (serve --workers)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--py-spy", type=Path, help="write py-spy's samples of the gateway here (py-spy on PATH)")
    options = parser.parse_args(argv)
    result = asyncio.run(main(options))
    if options.out:
        options.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    cli()
