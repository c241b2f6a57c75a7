"""The qualification summary for people: report.md with its tables and two plots beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt

PLOTS = ("throughput.png", "ttft.png")


def _num(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _verdicts(summary: dict[str, Any]) -> list[str]:
    rows = ["| target | measured | at least | verdict |", "| --- | --- | --- | --- |"]
    for name, v in summary["verdicts"].items():
        met = {True: "met", False: "missed", None: "not measured here"}[v["met"]]
        rows.append(f"| {name.replace('_', ' ')} | {_num(v['value'], 3)} | {v['target']} | {met} |")
    return rows


def _text_rows(summary: dict[str, Any]) -> list[str]:
    rows = [
        "| streams | engine tok/s | gateway tok/s | gateway / engine | TTFT p50 engine / gateway (ms) "
        "| TPOT p50 engine / gateway (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c, pair in summary["text"].items():
        e, g, r = pair["engine"], pair["gateway"], pair["gateway_over_engine"]
        rows.append(
            f"| {c} | {_num(e['output_throughput'])} | {_num(g['output_throughput'])} "
            f"| {_num(r.get('output_throughput'), 3)} | {_num(e['median_ttft_ms'])} / {_num(g['median_ttft_ms'])} "
            f"| {_num(e['median_tpot_ms'])} / {_num(g['median_tpot_ms'])} |"
        )
    return rows


def markdown(summary: dict[str, Any]) -> str:
    m, v, s, w = summary["machine"], summary["versions"], summary["startup"], summary["workload"]
    device = f"{m.get('gpu_count', 0)} × {m['gpu']} ({m['gpu_memory_gib']:.0f} GiB)" if "gpu" in m else "no GPU"
    image = summary["image"]
    lines = [
        f"# Qualification: {summary['profile']['name']}, {summary['date']}",
        "",
        f"`{summary['command']}` took {summary['took_s']:.0f} s on {device}, {m['cpus']} CPUs, driver "
        f"{m.get('driver') or '—'}; {', '.join(f'{k} {val}' for k, val in v.items())}. Model: {summary['model']}. "
        f"Gateway workers: {summary['workers']}.",
        "",
        "## Targets",
        "",
        *_verdicts(summary),
        "",
        "## Start",
        "",
        f"Ready {s['ready_s']:.0f} s after launch. vLLM's own figures: weights {_num(s.get('weights_s'))} s, "
        f"torch.compile {_num(s.get('compile_s'))} s, CUDA graphs {_num(s.get('cuda_graphs_s'))} s, engine init "
        f"{_num(s.get('init_engine_s'))} s. KV cache: {_num(summary['kv_tokens']['vllm'])} tokens (predicted "
        f"{_num(summary['kv_tokens']['predicted'])}).",
        "",
        f"## Text: {w['input_len']} tokens in, {w['output_len']} out",
        "",
        *_text_rows(summary),
        "",
        f"Decode at batch 1: {_num(summary['decode']['batch1_tok_s'])} tok/s (ceiling "
        f"{_num(summary['decode']['ceiling_tok_s'])}); at {summary['decode']['aggregate_batch']} streams "
        f"{_num(summary['decode']['aggregate_tok_s'])} tok/s (roofline {_num(summary['decode']['roofline_tok_s'])}).",
        "",
        f"## Images: {w['image_concurrency']} streams",
        "",
        f"Engine {_num(image['engine']['output_throughput'])} tok/s, TTFT p50 {_num(image['engine']['median_ttft_ms'])}"
        f" ms; gateway {_num(image['gateway']['output_throughput'])} tok/s, TTFT p50 "
        f"{_num(image['gateway']['median_ttft_ms'])} ms.",
        "",
        *(f"![{name}]({name})" for name in PLOTS),
        "",
    ]
    return "\n".join(lines)


def plots(summary: dict[str, Any], out: Path) -> None:
    streams = [int(c) for c in summary["text"]]
    for name, key, label in (
        (PLOTS[0], "output_throughput", "output tokens/s"),
        (PLOTS[1], "median_ttft_ms", "TTFT p50 (ms)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for side in ("engine", "gateway"):
            ax.plot(streams, [summary["text"][str(c)][side][key] for c in streams], marker="o", label=side)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(label)
        ax.legend()
        ax.set_title(f"{summary['profile']['name']}: {label}")
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
