"""`mistral-local bench`: build the workload, run it at each concurrency of the sweep (or compare two targets),
show a live progress bar and the result table, and write JSON, plots and a Markdown report."""

from __future__ import annotations

import asyncio
import math
import shlex
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from server.bench.client import Outcome, Target
from server.bench.compare import Comparison, compare
from server.bench.dialogues import cache_figures, dialogues, engine_counters, run_dialogues
from server.bench.load import LoadShape, run_load, wait_ready
from server.bench.metrics import Slo, summarize
from server.bench.output import markdown_report, plot_sweep, plot_ttft_cdf, result_table, save_json
from server.bench.workload import BenchRequest, Tokenizer, image_requests, random_requests, sharegpt_requests
from server.errors import ConfigError
from server.settings import Settings

ENGINE_PROBE_S = 2.0  # a little over the gateway's probe interval (server/fleet/watch.py)


@dataclass(frozen=True)
class BenchOptions:
    target: Target
    compare_with: Target | None
    dataset: str
    sharegpt_path: Path | None
    input_len: int
    output_len: int
    turns: int
    range_ratio: float
    prefix_len: int
    image_size: tuple[int, int]
    images: int
    num_prompts: int
    duration_s: float | None
    concurrencies: list[int | None]
    request_rate: float
    burstiness: float
    seed: int
    warmups: int
    ignore_eos: bool
    slo: Slo | None
    ready_timeout_s: float
    tokenizer: Path | None
    rounds: int
    out: Path
    cache_dir: Path


def options_from_flags(flags: dict[str, Any]) -> BenchOptions:
    """`mistral-local bench`'s flags (server/bench/command.py), checked."""
    f = flags
    width, _, height = f["image_size"].partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ConfigError(f"--image-size: WIDTHxHEIGHT, not {f['image_size']!r}")
    try:
        limits = Slo.parse(f["slo"]) if f["slo"] else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    second = f["compare_model"] or f["model"], f["compare_api_key"], f["compare_label"]
    same = ("dataset", "sharegpt_path", "input_len", "output_len", "turns", "range_ratio", "prefix_len", "images")
    return BenchOptions(
        target=Target(f["base_url"], f["model"], f["api_key"], f["label"]),
        compare_with=Target(f["compare"], *second) if f["compare"] else None,
        image_size=(int(width), int(height)),
        duration_s=f["duration"],
        concurrencies=parse_concurrency(f["max_concurrency"]),
        slo=limits,
        ready_timeout_s=f["ready_timeout"],
        cache_dir=Settings().cache_dir,
        **{k: f[k] for k in (*same, "num_prompts", "request_rate", "burstiness", "seed", "warmups", "ignore_eos")},
        **{k: f[k] for k in ("tokenizer", "rounds", "out")},
    )


def parse_concurrency(text: str) -> list[int | None]:
    """ "1,4,16" (or "inf" for no cap)."""
    try:
        return [None if v.strip() in ("inf", "0") else int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"--max-concurrency: a comma-separated list of integers, not {text!r}") from exc


def workload(opts: BenchOptions, tok: Tokenizer, content_seed: int | None = None) -> list[BenchRequest]:
    n, seed = opts.num_prompts + opts.warmups, opts.seed
    if opts.dataset == "random":
        return random_requests(
            tok, n=n, input_len=opts.input_len, output_len=opts.output_len, range_ratio=opts.range_ratio,
            prefix_len=opts.prefix_len, seed=seed, content_seed=content_seed,
        )  # fmt: skip
    if opts.dataset == "image":
        return image_requests(
            tok, n=n, size=opts.image_size, images=opts.images, input_len=opts.input_len,
            output_len=opts.output_len, seed=seed if content_seed is None else content_seed,
        )  # fmt: skip
    if opts.dataset == "sharegpt" and opts.sharegpt_path is not None:
        return sharegpt_requests(tok, opts.sharegpt_path, n=n, output_len=None, seed=seed)
    raise ConfigError("--dataset is random, image, multi-turn, or sharegpt with --sharegpt-path FILE")


def _shape(opts: BenchOptions, concurrency: int | None) -> LoadShape:
    return LoadShape(concurrency, opts.request_rate, opts.burstiness, opts.seed, opts.ignore_eos)


def _advance(progress: Progress, task: TaskID, _: Outcome) -> None:
    progress.advance(task)


async def _conversations(opts: BenchOptions, tok: Tokenizer, console: Console) -> list[dict[str, Any]]:
    """The multi-turn workload at each concurrency, new conversations each time (a cached one would flatter the
    next), with the run's prefix-cache hit rate per engine where the target is this gateway."""
    results = []
    for step, concurrency in enumerate(opts.concurrencies):
        talks = dialogues(
            tok, n=opts.num_prompts, turns=opts.turns, system_len=opts.prefix_len, turn_len=opts.input_len,
            output_len=opts.output_len, seed=opts.seed + step,
        )  # fmt: skip
        before = await engine_counters(opts.target)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"concurrency {concurrency or '∞'}", total=opts.num_prompts * opts.turns)
            run = await run_dialogues(opts.target, talks, _shape(opts, concurrency), partial(_advance, progress, task))
        result = summarize(run, opts.slo) | {"turns": opts.turns}
        await asyncio.sleep(ENGINE_PROBE_S)  # the gateway reads its engines' counters once a second
        after = await engine_counters(opts.target)
        if before is not None and after is not None:
            result |= cache_figures(before, after)
        results.append(result)
    return results


async def _sweep(opts: BenchOptions, requests: list[BenchRequest], console: Console) -> list[dict[str, Any]]:
    results = []
    for concurrency in opts.concurrencies:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"concurrency {concurrency or '∞'}", total=opts.num_prompts)
            run = await run_load(
                opts.target, requests, _shape(opts, concurrency), warmups=opts.warmups,
                duration_s=opts.duration_s, on_done=partial(_advance, progress, task),
            )  # fmt: skip
        results.append(summarize(run, opts.slo))
    return results


def _ratio_table(label_a: str, label_b: str, comparisons: list[tuple[int | None, Comparison]]) -> Table:
    table = Table(title=f"{label_b} / {label_a}: pooled ratio (per-round median, min-max)")
    table.add_column("metric")
    for concurrency, _ in comparisons:
        table.add_column(f"concurrency {concurrency or '∞'}", justify="right")
    for key in comparisons[0][1].ratios:
        cells = [f"{r['pooled']:.3f} ({r['median']:.3f}, {r['min']:.3f}-{r['max']:.3f})"
                 for r in (c.ratios[key] for _, c in comparisons)]  # fmt: skip
        table.add_row(key, *cells)
    return table


async def _main(opts: BenchOptions, console: Console) -> list[dict[str, Any]]:
    tok = Tokenizer(opts.tokenizer) if opts.tokenizer else Tokenizer.default(opts.cache_dir)
    targets = [opts.target] + ([opts.compare_with] if opts.compare_with else [])
    if opts.ready_timeout_s > 0:
        for t in targets:
            await wait_ready(t, opts.ready_timeout_s)
    if opts.dataset == "multi-turn":
        if opts.compare_with is not None:
            raise ConfigError("--dataset multi-turn measures one target at a time (run it once per target)")
        return await _conversations(opts, tok, console)
    if opts.compare_with is None:
        return await _sweep(opts, workload(opts, tok), console)
    b_seed = opts.seed + 1_000_003  # same lengths, other tokens: see compare.py
    loads = (workload(opts, tok)[opts.warmups :], workload(opts, tok, content_seed=b_seed)[opts.warmups :])
    comparisons, results = [], []
    for concurrency in opts.concurrencies:
        done = await compare((opts.target, opts.compare_with), loads, _shape(opts, concurrency), opts.rounds, opts.slo)
        comparisons.append((concurrency, done))
        results += [done.a, done.b | {"ratios_to_a": done.ratios}]
    console.print(_ratio_table(opts.target.label, opts.compare_with.label, comparisons))
    return results


def run_bench(opts: BenchOptions) -> None:
    console = Console()
    if math.isinf(opts.request_rate) and opts.concurrencies == [None]:
        console.print("note: request rate inf and no concurrency cap send every request at once", style="yellow")
    results = asyncio.run(_main(opts, console))
    console.print(result_table(results))
    opts.out.mkdir(parents=True, exist_ok=True)
    save_json(results, opts.out / "results.json")
    plots = ["throughput_vs_latency.png", "ttft_cdf.png"]
    plot_sweep(results, opts.out / plots[0])
    plot_ttft_cdf(results, opts.out / plots[1])
    command = shlex.join(["mistral-local", *sys.argv[1:]])
    (opts.out / "report.md").write_text(markdown_report(results, command, plots), encoding="utf-8")
    console.print(f"wrote {opts.out}/results.json, report.md and {', '.join(plots)}")
