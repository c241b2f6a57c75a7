"""The model qualification serves: Mistral Small 3.1's own params.json (the scaled-down one on CPU) and its Tekken
tokenizer, and no weights at all (the engine makes random ones: vLLM's dummy load format)."""

from __future__ import annotations

import json
from pathlib import Path

from server.checkpoint.tiny import TINY_PARAMS, tekken
from server.planning.model_shape import REFERENCE_PARAMS


def random_weights_model(cache_dir: Path, full_size: bool) -> Path:
    """A directory with params.json and tekken.json only: the 24B shape, or the scaled-down one."""
    directory = cache_dir / ("qualify-24b" if full_size else "qualify-tiny")
    directory.mkdir(parents=True, exist_ok=True)
    params = json.loads(REFERENCE_PARAMS.read_text(encoding="utf-8")) if full_size else TINY_PARAMS
    (directory / "params.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    tokenizer = directory / "tekken.json"
    if not tokenizer.exists():
        tokenizer.write_text(json.dumps(tekken()), encoding="utf-8")
    return directory
