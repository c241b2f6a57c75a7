"""The directory's tokenizer, checked as vLLM will load it: mistral-common's Tekken file, of the version the
recorded model needs (Small 3.1: v7; 3.2: v11, whose tool calls are written `[TOOL_CALLS]name[ARGS]{json}`)."""

from __future__ import annotations

import json
from pathlib import Path

from server.checkpoint.identity import IDENTITY_FILE, read_identity

TOKENIZER = "tekken.json"


def tokenizer_problems(directory: Path) -> list[str]:
    try:
        tekken = json.loads((directory / TOKENIZER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [
            f"{directory} has no {TOKENIZER}: mistral-local serves Mistral Small 3.x with mistral-common's tokenizer "
            "(with the HF tokenizer files alone, vLLM's tool calls for it break); copy tekken.json from the "
            "base model's repository (mistralai/Mistral-Small-3.1-24B-Instruct-2503)"
        ]
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{TOKENIZER} cannot be read as JSON ({exc})"]
    if not isinstance(tekken, dict) or "vocab" not in tekken or "config" not in tekken:
        return [f"{TOKENIZER} is not a Tekken tokenizer file (no 'config'/'vocab')"]
    return _version_problems(directory, str(tekken["config"].get("version")))


def _version_problems(directory: Path, version: str) -> list[str]:
    """A version that is not the recorded model's (Small 3.2's tool calls need its v11 tokenizer)."""
    identity = read_identity(directory)
    if identity is not None and identity.tokenizer and identity.tokenizer != version:
        return [
            f"{TOKENIZER} is tokenizer {version}, but {IDENTITY_FILE} says the weights are {identity.model_name}, "
            f"whose tokenizer is {identity.tokenizer}: copy tekken.json from {identity.hugging_face_id}"
        ]
    return []


def loading_problems(directory: Path) -> list[str]:
    """What vLLM would meet loading the file: mistral-common's own load, image settings included (about a second:
    asked for by the explicit checks, not at every start)."""
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    try:
        MistralTokenizer.from_file(str(directory / TOKENIZER))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        return [f"{TOKENIZER} does not load with mistral-common: {exc}"]
    return []


def tokenizer_version(directory: Path) -> int:
    """The Tekken version number of the directory's tekken.json (7 for "v7"; 0 when it cannot be read)."""
    try:
        config = json.loads((directory / TOKENIZER).read_text(encoding="utf-8"))["config"]
        return int(str(config["version"]).removeprefix("v").split("m")[0])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
