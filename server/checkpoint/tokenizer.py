"""The directory's tokenizer, checked as vLLM will load it: mistral-common's Tekken file, of the version the
recorded model needs (Small 3.1: v7; 3.2: v11, whose tool calls are written `[TOOL_CALLS]name[ARGS]{json}`;
Magistral Small 1.2: v13 with `[THINK]` and `[/THINK]`, which mark its reasoning)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from server.checkpoint.identity import IDENTITY_FILE, read_identity

TOKENIZER = "tekken.json"
THINK_TOKENS = ("[THINK]", "[/THINK]")


@dataclass(frozen=True)
class TokenizerFacts:
    version: int = 0  # 7 for "v7"; 0 when unreadable
    reasoning: bool = False  # it has [THINK] and [/THINK]: vLLM's Mistral reasoning parser applies
    problems: list[str] = field(default_factory=list)


def read_tokenizer(directory: Path) -> TokenizerFacts:
    """What the directory's tekken.json is, and its problems."""
    try:
        tekken = json.loads((directory / TOKENIZER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return TokenizerFacts(
            problems=[
                f"{directory} has no {TOKENIZER}: mistral-local serves Mistral Small 3.x with mistral-common's "
                "tokenizer (with the HF tokenizer files alone, vLLM's tool calls for it break); copy tekken.json from "
                "the base model's repository (mistralai/Mistral-Small-3.1-24B-Instruct-2503)"
            ]
        )
    except (OSError, json.JSONDecodeError) as exc:
        return TokenizerFacts(problems=[f"{TOKENIZER} cannot be read as JSON ({exc})"])
    if not isinstance(tekken, dict) or "vocab" not in tekken or not isinstance(tekken.get("config"), dict):
        return TokenizerFacts(problems=[f"{TOKENIZER} is not a Tekken tokenizer file (no 'config'/'vocab')"])
    version = str(tekken["config"].get("version"))
    number = version.removeprefix("v").split("m")[0]  # "v7m1" is a v7
    special = {t.get("token_str") for t in tekken.get("special_tokens") or [] if isinstance(t, dict)}
    return TokenizerFacts(
        int(number) if number.isdigit() else 0,
        all(t in special for t in THINK_TOKENS),
        _version_problems(directory, version),
    )


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
