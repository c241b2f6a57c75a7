"""`mistral-local qualify`: prepare, serve, measure, report; the gateway is always stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from server.qualify.render import markdown, plots
from server.qualify.run import measure, prepare, start_gateway, stop_gateway, wait_ready
from server.qualify.startup import startup_figures
from server.qualify.summary import summarize

TIME_LIMIT_S = 600.0  # a qualification must fit in 10 minutes on one H200


def run_qualify(profile: str, out: Path, workers: int | None, cache_dir: Path) -> dict[str, Any]:
    console = Console(stderr=True)
    started = time.monotonic()
    session = prepare(profile, out, workers, cache_dir)
    console.print(f"qualify: profile {session.profile.name}, {session.workers} gateway worker(s), random weights")
    proc = start_gateway(session, cache_dir)
    try:
        ready_s = wait_ready(session, proc)
        console.print(f"qualify: ready in {ready_s:.0f} s; measuring")
        session.figures = startup_figures((out / "gateway.log").read_text(errors="replace"))
        measured = measure(session)
    finally:
        stop_gateway(proc)
    summary = summarize(session, ready_s, measured, time.monotonic() - started)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plots(summary, out)
    (out / "report.md").write_text(markdown(summary), encoding="utf-8")
    for name, v in summary["verdicts"].items():
        console.print(f"  {name}: {v['value']} (at least {v['target']}): {v['met']}")
    if summary["took_s"] > TIME_LIMIT_S:
        console.print(f"[yellow]qualify took {summary['took_s']:.0f} s, over its {TIME_LIMIT_S:.0f} s budget[/]")
    console.print(f"[green]wrote[/] {out}/report.md, report.json and plots")
    return summary
