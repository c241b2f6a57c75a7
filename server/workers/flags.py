"""The flags of `mistral-local serve` (server/cli.py), kept apart so that `--help` imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ServeHost = Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")]

ServePort = Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")]

ServeWorkers = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=64,
        help="Gateway processes sharing the port, with one set of limits and records (default 1). More when "
        "one core cannot relay the engine's output: see docs/performance.md.",
    ),
]

ServeModel = Annotated[
    Path | None,
    typer.Option(help="Mistral-native model directory. Without it and without a GPU: the scaled-down checkpoint."),
]

ServeProfile = Annotated[
    str | None,
    typer.Option(
        help="Hardware profile: a name in configs/profiles, a YAML path, or auto (detect GPUs and plan; no GPU: "
        "cpu-tiny, or cpu-24b for real weights). Default: auto."
    ),
]

ServeEngineUrl = Annotated[
    list[str] | None,
    typer.Option(
        help="Attach to a running engine (`mistral-local engine` on another node, or a router in front of several): "
        "http://HOST:PORT or unix:PATH. Repeat it for a fleet. Their key: MISTRAL_LOCAL_ENGINE_API_KEY; a key each: "
        "--fleet-file."
    ),
]

ServeFleetFile = Annotated[
    Path | None,
    typer.Option(help="YAML list of engines to attach to, each with its key file (see docs/deploy.md)."),
]

ServeEngines = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=64,
        help="Engines to launch on this host from the profile, each on its own GPUs (default: 1, or 0 when engines "
        "are attached).",
    ),
]

ServeRouting = Annotated[
    str | None,
    typer.Option(
        help="Which engine takes a request: affinity (a conversation stays on its engine; default), least-loaded "
        "or round-robin (for measuring)."
    ),
]

ServeEnginePort = Annotated[
    int | None,
    typer.Option(
        help="A loopback TCP port for the launched engine (default: a Unix socket only this user can reach; a "
        "port lets benchmarks and other gateways in, and every local user)."
    ),
]

ServeKeysFile = Annotated[Path | None, typer.Option(help="YAML file of API keys (see `mistral-local new-key`).")]

ServeInsecureNoAuth = Annotated[
    bool, typer.Option("--insecure-no-auth", help="Allow a non-loopback address with no API keys.")
]
