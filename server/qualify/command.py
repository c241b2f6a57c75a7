"""`mistral-local qualify`: its flags and command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
