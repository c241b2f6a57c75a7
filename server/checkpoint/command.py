"""`mistral-local make-tiny` and `fetch-weights`: their flags and commands."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from server.errors import ConfigError


def make_tiny(
    directory: Annotated[Path, typer.Argument(help="Where to write the checkpoint.")],
    layout: Annotated[
        str,
        typer.Option(
            help="mistral (params.json, consolidated.safetensors), hf (config.json and shards, as transformers "
            "saves them), hf-w8a8 or hf-w4a16 (the same, its decoder INT8 W8A8 or INT4 W4A16 in compressed-tensors, "
            "as RedHatAI's)."
        ),
    ] = "mistral",
    release: Annotated[
        str,
        typer.Option(
            help="3.1, 3.2 or magistral (Magistral Small 1.2): that release's tokenizer (3.2: v11, tool calls as "
            "[TOOL_CALLS]name[ARGS]{json}; magistral: v13 with [THINK] and [/THINK]) and model record, so "
            "`serve --model DIR` serves it under that release's id."
        ),
    ] = "3.1",
) -> None:
    """Write the scaled-down Mistral Small checkpoint (deterministic: the same model every time)."""
    from server.checkpoint.check import check_model
    from server.checkpoint.identity import KNOWN, RELEASES
    from server.checkpoint.quantization import checkpoint_weights
    from server.checkpoint.tiny import write_tiny, write_tiny_hf

    writers: dict[str, Callable[..., Path]] = {
        "mistral": write_tiny,
        "hf": write_tiny_hf,
        "hf-w8a8": partial(write_tiny_hf, quantized="w8a8"),
        "hf-w4a16": partial(write_tiny_hf, quantized="w4a16"),
    }
    if layout not in writers:
        raise ConfigError(f"--layout must be one of {', '.join(writers)}, not {layout!r}")
    if release not in RELEASES:
        raise ConfigError(f"--release must be one of {', '.join(RELEASES)}, not {release!r}")
    writers[layout](directory, release=release)
    report = check_model(directory, thorough=True)
    weights = checkpoint_weights(directory)
    name = KNOWN[RELEASES[release]].model_name
    typer.echo(
        f"wrote {directory}: {name} ({report.parameters / 1e6:.1f} M values, {report.format} layout, {weights} weights)"
    )


def fetch_weights_cmd(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the weights.")] = Path(
        "models/mistral-small-3.1"
    ),
    repo: Annotated[
        str,
        typer.Option(
            help="Hugging Face repository, or 3.1 / 3.2 (Mistral Small 3.2: same architecture) / magistral "
            "(Magistral Small 1.2: 3.2 trained to reason first) / 3.1-fp8 / 3.1-w8a8 "
            "/ 3.1-w4a16 (RedHatAI's quantized Mistral Small 3.1: FP8, INT8 W8A8, INT4 W4A16)."
        ),
    ] = "3.1",
    revision: Annotated[str | None, typer.Option(help="A branch, tag or commit (default: main).")] = None,
) -> None:
    """Download a checkpoint, resumably, verify its weights files against the Hub's SHA-256, then check it: the
    Mistral-native files (params.json, consolidated.safetensors, tekken.json; about 48 GB for 3.1) where the
    repository has them, else its Hugging Face layout (config.json and shards; the base model's tekken.json beside it
    if it has none). Says first how much disk it needs. The mistralai repositories are gated: accept the terms on
    Hugging Face and set HF_TOKEN."""
    from server.checkpoint.fetch import fetch_weights

    done = fetch_weights(repo, directory, revision, say=typer.echo)
    typer.echo(f"✓ {done} is ready: mistral-local serve --model {done}")
