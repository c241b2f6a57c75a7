"""The `mistral-local` command: it registers each subcommand, whose flags and body live in its own room's
`command.py`, and turns the two errors a command may end with into exit codes."""

from __future__ import annotations

import typer

from server.access.command import new_key_cmd
from server.bench.command import app as bench_app
from server.bundle.command import bundle
from server.checkpoint.command import fetch_weights_cmd, make_tiny
from server.errors import ConfigError, EngineFailed
from server.planning.command import check_model_cmd, plan
from server.qualify.command import qualify
from server.serve.command import engine, serve

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Mistral Small 3.1 on vLLM behind an OpenRouter-compatible API."
)
app.command()(serve)
app.command()(engine)
app.command()(plan)
app.add_typer(bench_app, name="bench")
app.command()(qualify)
app.command()(bundle)
app.command("new-key")(new_key_cmd)
app.command("make-tiny")(make_tiny)
app.command("check-model")(check_model_cmd)
app.command("fetch-weights")(fetch_weights_cmd)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised inside a command: Typer has already left, so exit here
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
    except EngineFailed as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(3) from None
