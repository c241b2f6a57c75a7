"""`mistral-local serve` and `mistral-local engine`: their flags and commands. Heavy imports stay inside the
commands so `--help` is instant; every flag reaches the command's function by name (ctx.params)."""

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

NodeHost = Annotated[str, typer.Option(help="Address to listen on: this node's private address, or 0.0.0.0.")]

NodePort = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]

NodeKeyFile = Annotated[
    Path | None,
    typer.Option(help="The engine's key: read, or made (mode 0600). Default: engine-PORT.key in the cache directory."),
]


def serve(
    ctx: typer.Context,
    host: ServeHost = None,
    port: ServePort = None,
    workers: ServeWorkers = None,
    model: ServeModel = None,
    profile: ServeProfile = None,
    engine_url: ServeEngineUrl = None,
    fleet_file: ServeFleetFile = None,
    engines: ServeEngines = None,
    routing: ServeRouting = None,
    engine_port: ServeEnginePort = None,
    keys_file: ServeKeysFile = None,
    insecure_no_auth: ServeInsecureNoAuth = False,
) -> None:
    """Run the gateway and the engines it supervises or attaches to."""
    from server.serve.start import serve_from_flags

    serve_from_flags(ctx.params)


def engine(
    host: NodeHost = "127.0.0.1",
    port: NodePort = 8100,
    model: ServeModel = None,
    profile: ServeProfile = None,
    key_file: NodeKeyFile = None,
) -> None:
    """Run one engine of a fleet on this node, for a gateway on another to attach to (prints its URL and key file)."""
    from server.serve.node import run_node
    from server.serve.start import settings_from_flags

    settings = settings_from_flags({"model": model, "profile": profile})
    run_node(settings, host, port, key_file or settings.cache_dir / f"engine-{port}.key")
