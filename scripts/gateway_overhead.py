"""What the gateway costs, with the gateway as the bottleneck: a synthetic OpenAI-compatible engine on loopback
streams pre-rendered chunks at a set rate, and the same load goes to it directly and through the gateway,
interleaved (`mistral-local bench --compare` underneath). Reports added TTFT p50/p99, the throughput ratio, and the
gateway's CPU time per streamed chunk and per request, read from the OS for the gateway process.

    python scripts/gateway_overhead.py --concurrency 1,64 --prompts 256 --tokens 128 --interval-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiohttp import web

from server.bench.client import Target
from server.bench.compare import compare
from server.bench.load import LoadShape, Run, run_load
from server.bench.workload import BenchRequest, Tokenizer, random_requests
from server.engine.launcher import free_port

MODEL = "mistralai/mistral-small-3.1-24b-instruct"
KEY = "synthetic-engine-key"
REPO = Path(__file__).resolve().parents[1]


def synthetic_engine(port: int, tokens: int, interval_s: float) -> None:
    """vLLM's routes the gateway uses, answering at once; streams `tokens` chunks, one every `interval_s`."""

    def chunk(i: int, finish: str | None) -> bytes:
        body = {
            "id": "chatcmpl-synthetic", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": f" tok{i}"}, "logprobs": None,
                         "finish_reason": finish}],
        }  # fmt: skip
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    rendered = [chunk(i, "length" if i == tokens - 1 else None) for i in range(tokens)]
    usage = {"prompt_tokens": 40, "completion_tokens": tokens, "total_tokens": 40 + tokens}
    tail = b"data: " + json.dumps({"id": "chatcmpl-synthetic", "choices": [], "usage": usage}).encode() + b"\n\n"

    async def health(_: web.Request) -> web.Response:
        return web.Response()

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": MODEL, "max_model_len": 131072, "root": MODEL}]})

    async def completions(_: web.Request) -> web.Response:
        return web.json_response({"choices": [{"text": "x", "finish_reason": "length"}], "usage": usage})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            message = {"role": "assistant", "content": "x"}
            return web.json_response({"id": "c", "choices": [{"message": message, "finish_reason": "length"}],
                                      "usage": usage, "model": MODEL})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in rendered:
            await asyncio.sleep(interval_s)
            await response.write(piece)
        await response.write(tail + b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/v1/models", models),
                    web.post("/v1/completions", completions), web.post("/v1/chat/completions", chat)])  # fmt: skip
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def measured(
    gateway: psutil.Process, target: Target, requests: list[BenchRequest], shape: LoadShape, cpu: dict[str, float]
) -> Run:
    """A run; when it goes through the gateway, the gateway's CPU seconds during it are added to `cpu`."""
    before = gateway.cpu_times()
    run = await run_load(target, requests, shape)
    if target.label == "gateway":
        after = gateway.cpu_times()
        cpu["seconds"] += (after.user - before.user) + (after.system - before.system)
        cpu["requests"] += sum(1 for o in run.outcomes if o.ok)
        cpu["chunks"] += sum(o.output_tokens for o in run.outcomes if o.ok)
    return run


def start(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int, int]:
    engine_port, gateway_port = free_port(), free_port()
    me = [sys.executable, __file__, "--serve-engine", str(engine_port), "--tokens", str(args.tokens)]
    engine = subprocess.Popen([*me, "--interval-ms", str(args.interval_ms)])
    env = os.environ | {
        "MISTRAL_LOCAL_ENGINE_API_KEY": KEY, "MISTRAL_LOCAL_MAX_IN_FLIGHT": "4096", "MISTRAL_LOCAL_MAX_WAITING": "4096",
        "MISTRAL_LOCAL_MAX_TOKENS_IN_FLIGHT": "100000000", "MISTRAL_LOCAL_LOG_FORMAT": "json",
        "MISTRAL_LOCAL_CACHE_DIR": str(REPO / ".cache" / "overhead"),
    }  # fmt: skip
    cmd = [sys.executable, "-m", "server", "serve", "--engine-url", f"http://127.0.0.1:{engine_port}"]
    with (REPO / ".cache" / "gateway-overhead.log").open("wb") as log:
        gateway = subprocess.Popen([*cmd, "--port", str(gateway_port)], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{gateway_port}/health/ready", timeout=2).status_code == 200:
                return engine, gateway, engine_port, gateway_port
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not become ready (.cache/gateway-overhead.log)")
        time.sleep(0.3)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    engine, gateway, engine_port, gateway_port = start(args)
    try:
        tok = Tokenizer.default(REPO / ".cache")
        make = {"n": args.prompts, "input_len": 32, "output_len": args.tokens, "range_ratio": 0.0, "prefix_len": 0}
        loads = (random_requests(tok, seed=0, **make), random_requests(tok, seed=0, content_seed=1, **make))
        direct = Target(f"http://127.0.0.1:{engine_port}/v1", MODEL, KEY, "engine")
        through = Target(f"http://127.0.0.1:{gateway_port}/api/v1", MODEL, "", "gateway")
        proc = psutil.Process(gateway.pid)
        report: dict[str, Any] = {"tokens": args.tokens, "interval_ms": args.interval_ms, "prompts": args.prompts}
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            cpu = {"seconds": 0.0, "requests": 0.0, "chunks": 0.0}
            shape = LoadShape(max_concurrency=concurrency)

            async def runner(t: Target, reqs: list[BenchRequest], s: LoadShape, cpu: dict[str, float] = cpu) -> Run:
                return await measured(proc, t, reqs, s, cpu)

            done = await compare((direct, through), loads, shape, args.rounds, runner=runner)
            report[f"c{concurrency}"] = {
                "added_ttft_p50_ms": done.b["median_ttft_ms"] - done.a["median_ttft_ms"],
                "added_ttft_p99_ms": done.b["p99_ttft_ms"] - done.a["p99_ttft_ms"],
                "throughput_ratio": done.ratios["output_throughput"],
                "gateway_cpu_us_per_chunk": 1e6 * cpu["seconds"] / max(cpu["chunks"], 1),
                "gateway_cpu_us_per_request": 1e6 * cpu["seconds"] / max(cpu["requests"], 1),
                "failed": done.a["failed"] + done.b["failed"],
            }
            print(f"concurrency {concurrency}: {json.dumps(report[f'c{concurrency}'], indent=1)}", flush=True)
        return report
    finally:
        gateway.terminate()
        engine.terminate()
        gateway.wait(30)
        engine.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--serve-engine", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_engine:
        synthetic_engine(options.serve_engine, options.tokens, options.interval_ms / 1000)
    else:
        result = asyncio.run(main(options))
        if options.out:
            options.out.write_text(json.dumps(result, indent=2) + "\n")
