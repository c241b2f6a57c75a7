"""The flags of `mistral-local bench` (server/cli.py), kept apart so that `--help` imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BenchBaseUrl = Annotated[str, typer.Option(help="Target API base: this server, a vLLM engine, or OpenRouter.")]

BenchApiKey = Annotated[
    str,
    typer.Option(envvar="MISTRAL_LOCAL_BENCH_API_KEY", help="The target's key (env MISTRAL_LOCAL_BENCH_API_KEY)."),
]

BenchModel = Annotated[str, typer.Option(help="Model id to request.")]

BenchLabel = Annotated[str, typer.Option(help="Name of the target in tables and plots.")]

BenchCompare = Annotated[
    str | None,
    typer.Option(help="Second target's base URL: the same requests, interleaved, as ratios to the first."),
]

BenchCompareApiKey = Annotated[str, typer.Option(envvar="MISTRAL_LOCAL_BENCH_COMPARE_API_KEY")]

BenchCompareModel = Annotated[str | None, typer.Option(help="Model id at the second target (default: --model).")]

BenchCompareLabel = Annotated[str, typer.Option()]

BenchRounds = Annotated[int, typer.Option(min=1, help="Interleaved rounds per comparison (order alternates).")]

BenchDataset = Annotated[
    str,
    typer.Option(
        help="random, image, sharegpt, or multi-turn (--num-prompts conversations of --turns turns, a shared "
        "system prompt of --prefix-len tokens, user turns of --input-len)."
    ),
]

BenchTurns = Annotated[int, typer.Option(min=1, help="Turns per conversation (--dataset multi-turn).")]

BenchSharegptPath = Annotated[Path | None, typer.Option(help="ShareGPT-format JSON file (with --dataset sharegpt).")]

BenchInputLen = Annotated[int, typer.Option(min=1, help="Prompt tokens (Tekken).")]

BenchOutputLen = Annotated[int, typer.Option(min=1, help="Output tokens (max_tokens).")]

BenchRangeRatio = Annotated[float, typer.Option(min=0, max=1, help="Lengths uniform in [L(1-r), L(1+r)].")]

BenchPrefixLen = Annotated[int, typer.Option(min=0, help="Tokens of a prefix every prompt shares.")]

BenchImageSize = Annotated[str, typer.Option(help="WIDTHxHEIGHT of generated images (--dataset image).")]

BenchImages = Annotated[int, typer.Option(min=1, help="Images per request (--dataset image).")]

BenchNumPrompts = Annotated[int, typer.Option(min=1, help="Requests per run.")]

BenchDuration = Annotated[float | None, typer.Option(help="Stop sending after this many seconds.")]

BenchMaxConcurrency = Annotated[str, typer.Option(help="Concurrency caps to sweep, e.g. 1,4,16,64 (inf: none).")]

BenchRequestRate = Annotated[float, typer.Option(help="Requests per second (inf: all at once).")]

BenchBurstiness = Annotated[float, typer.Option(help="Gamma shape of arrivals: 1 Poisson, <1 burstier.")]

BenchSeed = Annotated[int, typer.Option(help="Same seed, same requests.")]

BenchWarmups = Annotated[int, typer.Option(min=0, help="Requests sent (and not measured) before each run.")]

BenchIgnoreEos = Annotated[bool, typer.Option(help="Ask for exactly --output-len tokens (vLLM targets).")]

BenchSlo = Annotated[list[str] | None, typer.Option(help="Goodput limit, repeatable: ttft:MS, tpot:MS, e2el:MS.")]

BenchReadyTimeout = Annotated[float, typer.Option(help="Wait up to this many seconds for the target.")]

BenchTokenizer = Annotated[Path | None, typer.Option(help="tekken.json (default: mistral-common's Tekken v7).")]

BenchOut = Annotated[Path, typer.Option(help="Directory for results.json, report.md and the plots.")]
