"""`mistral-local new-key`: make an API key and its keys-file entry."""

from __future__ import annotations

from typing import Annotated

import typer


def new_key_cmd(
    label: Annotated[str, typer.Argument(help="A name for the key, shown in logs and records.")],
    management: Annotated[
        bool, typer.Option("--management", help="An operator's key: may read /metrics (every key's usage).")
    ] = False,
) -> None:
    """Make an API key: prints the key (give it to its user) and its keys-file entry (only the hash)."""
    import yaml

    from server.access.auth import KeySpec, hash_key, new_key

    key = new_key()
    entry = KeySpec(label=label, sha256=hash_key(key), management=management).model_dump(exclude_defaults=True)
    typer.echo(f"key: {key}")
    typer.echo("keys-file entry (append under `keys:`):")
    typer.echo(yaml.safe_dump([entry], sort_keys=False).rstrip())
