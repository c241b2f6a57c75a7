"""The flags of `mistral-local engine` (server/cli.py), kept apart so that `--help` imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NodeHost = Annotated[str, typer.Option(help="Address to listen on: this node's private address, or 0.0.0.0.")]

NodePort = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]

NodeKeyFile = Annotated[
    Path | None,
    typer.Option(help="The engine's key: read, or made (mode 0600). Default: engine-PORT.key in the cache directory."),
]
