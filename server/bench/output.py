"""Benchmark output: a result table, JSON with `vllm bench serve --save-result` field names, PNG plots and a
Markdown report that embeds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt
import numpy as np
from rich.table import Table

Cell = Callable[[dict[str, Any]], str]
ROWS: tuple[tuple[str, Cell], ...] = (
    ("completed / failed", lambda r: f"{r['completed']} / {r['failed']}"),
    ("duration (s)", lambda r: f"{r['duration']:.2f}"),
    ("request throughput (req/s)", lambda r: f"{r['request_throughput']:.2f}"),
    ("output throughput (tok/s)", lambda r: f"{r['output_throughput']:.1f}"),
    ("total token throughput (tok/s)", lambda r: f"{r['total_token_throughput']:.1f}"),
    ("goodput (req/s)", lambda r: "—" if r["request_goodput"] is None else f"{r['request_goodput']:.2f}"),
    *(
        (f"{m.upper()} mean / p50 / p90 / p99 (ms)", lambda r, m=m: " / ".join(
            f"{r[f'{k}_{m}_ms']:.1f}" for k in ("mean", "median", "p90", "p99")
        ))
        for m in ("ttft", "tpot", "itl", "e2el")
    ),
)  # fmt: skip


def result_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="Benchmark (vLLM's metric definitions)")
    table.add_column("")
    for r in results:
        table.add_column(f"{r['label'] or r['base_url']}\nconcurrency {r['max_concurrency'] or '∞'}", justify="right")
    for label, cell in ROWS:
        table.add_row(label, *(cell(r) for r in results))
    errors = {code for r in results for code in r["errors_by_code"]}
    for code in sorted(errors):
        table.add_row(f"errors: {code}", *(str(r["errors_by_code"].get(code, 0)) for r in results))
    return table


def save_json(results: list[dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(results if len(results) > 1 else results[0], indent=2) + "\n", encoding="utf-8")


def plot_sweep(results: list[dict[str, Any]], path: Path) -> None:
    """Output throughput against p50 and p99 TTFT and TPOT, one point per concurrency of the sweep."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label in dict.fromkeys(r["label"] for r in results):
        runs = sorted((r for r in results if r["label"] == label), key=lambda r: r["max_concurrency"] or 0)
        x = [r["output_throughput"] for r in runs]
        for ax, metric in zip(axes, ("ttft", "tpot"), strict=True):
            for p, style in (("median", "o-"), ("p99", "s--")):
                ax.plot(x, [r[f"{p}_{metric}_ms"] for r in runs], style, label=f"{label} {p}")
            for r in runs:
                ax.annotate(f"c={r['max_concurrency'] or '∞'}", (r["output_throughput"], r[f"median_{metric}_ms"]))
    for ax, metric in zip(axes, ("TTFT", "TPOT"), strict=True):
        ax.set_xlabel("output throughput (tok/s)")
        ax.set_ylabel(f"{metric} (ms)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ttft_cdf(results: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ttfts = np.sort(np.array(r["ttfts"]) * 1000)
        if ttfts.size:
            ax.step(ttfts, np.arange(1, ttfts.size + 1) / ttfts.size, where="post",
                    label=f"{r['label']} c={r['max_concurrency'] or '∞'}")  # fmt: skip
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("fraction of requests")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing completed: no curve to name
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_report(results: list[dict[str, Any]], command: str, plots: list[str]) -> str:
    keys = ("max_concurrency", "completed", "failed", "request_throughput", "output_throughput", "median_ttft_ms",
            "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "median_itl_ms", "median_e2el_ms")  # fmt: skip
    lines = ["# Benchmark report", "", f"Command: `{command}`", "", "| target | " + " | ".join(keys) + " |"]
    lines.append("|" + " --- |" * (len(keys) + 1))
    for r in results:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in (r[k] for k in keys)]
        lines.append(f"| {r['label'] or r['base_url']} | " + " | ".join(cells) + " |")
    errors = {code: n for r in results for code, n in r["errors_by_code"].items()}
    lines += ["", "Failures by error: " + (", ".join(f"{c}: {n}" for c, n in errors.items()) or "none"), ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
