"""What session affinity buys on two engines, in one run: two real engines (`mistral-local engine`, the scaled-down
checkpoint on CPU), two gateways in front of both (`--routing affinity`, `--routing round-robin`), and the same
multi-turn workload (`mistral-local bench --dataset multi-turn`, new conversations for each gateway) through each.
Prints each gateway's prefix-cache hit rate over its run (from the engines' own counters), TTFT, the requests each
engine served, and the ratio of the hit rates. docs/performance.md quotes it.

    mistral-local bench affinity [--conversations 24 --turns 4 --concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from server.bench.overhead.fronts import wait_until
from server.serving import free_port

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "server"]


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([*CLI, *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)


def bench(url: str, out: Path, seed: int, opts: argparse.Namespace) -> dict[str, Any]:
    flags = ["--dataset", "multi-turn", "--num-prompts", str(opts.conversations), "--turns", str(opts.turns)]
    flags += ["--prefix-len", str(opts.system), "--input-len", str(opts.turn), "--output-len", str(opts.output)]
    flags += ["--max-concurrency", str(opts.concurrency), "--seed", str(seed), "--warmups", "0"]
    subprocess.run([*CLI, "bench", "--base-url", f"{url}/api/v1", "--out", str(out), *flags], check=True, cwd=REPO)
    result: dict[str, Any] = json.loads((out / "results.json").read_text())  # one concurrency: one result
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mistral-local bench affinity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--system", type=int, default=64, help="shared system prompt, tokens")
    parser.add_argument("--turn", type=int, default=256, help="each user turn, tokens")
    parser.add_argument("--output", type=int, default=32, help="each answer, tokens")
    parser.add_argument("--concurrency", type=int, default=4)
    opts = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fleet-affinity-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        engines = []
        for i in range(2):
            port, key = free_port(), work / f"engine-{i}.key"
            procs.append(start(["engine", "--port", str(port), "--key-file", str(key)], work / f"engine-{i}.log"))
            engines.append({"url": f"http://127.0.0.1:{port}", "api_key_file": str(key), "name": f"engine-{i}"})
        for i, e in enumerate(engines):
            wait_until(f"{e['url']}/health", str(e["name"]), work / f"engine-{i}.log", procs[i])
        (work / "fleet.yaml").write_text(json.dumps({"engines": engines}))
        gateways = {}
        for routing in ("affinity", "round-robin"):
            port = free_port()
            args = ["serve", "--port", str(port), "--fleet-file", str(work / "fleet.yaml"), "--routing", routing]
            procs.append(start(args, work / f"gateway-{routing}.log"))
            gateways[routing] = f"http://127.0.0.1:{port}"
        for (routing, url), proc in zip(gateways.items(), procs[2:], strict=True):
            wait_until(f"{url}/health/ready", f"the {routing} gateway", work / f"gateway-{routing}.log", proc)
        results = {r: bench(url, work / r, seed, opts) for seed, (r, url) in enumerate(gateways.items())}
        report(results, opts)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(60)


def report(results: dict[str, dict[str, Any]], opts: argparse.Namespace) -> None:
    print(
        f"\n{opts.conversations} conversations x {opts.turns} turns, system {opts.system} tokens, user turns "
        f"{opts.turn}, answers {opts.output}, {opts.concurrency} at once, two cpu-tiny engines"
    )
    print(f"{'routing':<12} {'prefix-cache hit rate':>22} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12}  requests per engine")
    for routing, r in results.items():
        spread = ", ".join(f"{e['engine']} {e['requests']}" for e in r["engines"])
        print(
            f"{routing:<12} {r['prefix_cache_hit_rate']:>22.3f} {r['median_ttft_ms']:>12.0f} "
            f"{r['p99_ttft_ms']:>12.0f}  {spread}"
        )
    affinity, rr = results["affinity"]["prefix_cache_hit_rate"], results["round-robin"]["prefix_cache_hit_rate"]
    print(f"affinity / round-robin hit rate: {affinity / rr:.2f}x" if rr else "round-robin found nothing cached")


if __name__ == "__main__":
    main()
