"""Which model a weights directory holds, as `fetch-weights` (or `make-tiny --release`) recorded it, and how it is
served under that name.

Mistral Small 3.2 has 3.1's architecture and files; its tokenizer (v11), OpenRouter record and card differ. Magistral
Small 1.2 is Small 3.2 trained to reason first: its tokenizer (v13) marks the reasoning with [THINK] and [/THINK], and
its card asks for other sampling and a shorter context. Recording them beside the weights lets `serve --model DIR` name
the model right without flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from server.errors import ConfigError

IDENTITY_FILE = "served-model.json"
SYSTEM_PROMPT_FILE = "SYSTEM_PROMPT.txt"


@dataclass(frozen=True)
class Identity:
    """How the model in a directory is served: OpenRouter's id, canonical slug, display name and listing date, and
    the sampling its card recommends (used for what a request leaves unset)."""

    model_id: str
    canonical_slug: str
    model_name: str
    hugging_face_id: str
    model_description: str
    created: int = 0  # OpenRouter's listing date (unix seconds); 0: not listed there
    temperature: float = 0.15
    tokenizer: str = ""  # its Tekken version ("": not known here)
    top_p: float | None = None  # the card's, if it names one
    reasoning: bool = False  # it reasons before it answers (vLLM's reasoning parser splits the two)
    context: int = 0  # the context its card recommends serving (0: the model's whole context)
    max_output: int = 0  # the longest answer its card asks room for (0: none named)
    system_prompt: str = ""  # its repository's SYSTEM_PROMPT.txt, for a reasoning model (read from that file)


KNOWN: dict[str, Identity] = {
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": Identity(
        "mistralai/mistral-small-3.1-24b-instruct",
        "mistralai/mistral-small-3.1-24b-instruct-2503",
        "Mistral: Mistral Small 3.1 24B",
        "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
        "Mistral Small 3.1 24B Instruct: 24 billion parameters, text and image input, 128k context, function "
        "calling. Served locally by mistral-local on vLLM; nothing leaves this machine.",
        created=1742238937,
        temperature=0.15,  # the card's recommendation
        tokenizer="v7",
    ),
    "mistralai/Mistral-Small-3.2-24B-Instruct-2506": Identity(
        "mistralai/mistral-small-3.2-24b-instruct",
        "mistralai/mistral-small-3.2-24b-instruct-2506",
        "Mistral: Mistral Small 3.2 24B",
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "Mistral Small 3.2 24B Instruct, the update of Mistral Small 3.1 (same architecture): text and image input, "
        "128k context, function calling. Served locally by mistral-local on vLLM; nothing leaves this machine.",
        created=1750443016,
        temperature=0.15,  # the card: "a relatively low temperature, such as temperature=0.15"
        tokenizer="v11",  # tool calls `[TOOL_CALLS]name[ARGS]{json}`
    ),
    "mistralai/Magistral-Small-2509": Identity(
        # OpenRouter lists Magistral Small 1.0 (mistralai/magistral-small-2506); 1.2 takes the id of its pattern.
        "mistralai/magistral-small-2509",
        "mistralai/magistral-small-2509",
        "Mistral: Magistral Small 2509",
        "mistralai/Magistral-Small-2509",
        "Magistral Small 1.2 (2509): Mistral Small 3.2 trained to reason before it answers, with text and image input "
        "and function calling. Served locally by mistral-local on vLLM; nothing leaves this machine.",
        created=0,  # not listed on OpenRouter
        temperature=0.7,  # the card: "top_p: 0.95, temperature: 0.7, max_tokens: 40960"
        tokenizer="v13",  # [THINK] and [/THINK] mark the reasoning
        top_p=0.95,
        reasoning=True,
        context=40960,  # the card: "performance might degrade past 40k. Hence we recommend ... 40k"
        max_output=40960,
    ),
}
# The settings each recorded field sets (the listing date is the catalog's, looked up by id).
SETTINGS_FIELDS = {
    "model_id": "model_id",
    "canonical_slug": "canonical_slug",
    "model_name": "model_name",
    "hugging_face_id": "hugging_face_id",
    "model_description": "model_description",
    "temperature": "default_temperature",
}
DEFAULT = KNOWN["mistralai/Mistral-Small-3.1-24B-Instruct-2503"]
# The releases' short names (`fetch-weights --repo 3.2`, `make-tiny --release 3.2`).
RELEASES = {
    "3.1": DEFAULT.hugging_face_id,
    "3.2": "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
    "magistral": "mistralai/Magistral-Small-2509",
}


def identity_of(model_id: str) -> Identity:
    """How to describe a model served under `model_id`: a known one's record, else one made of the id alone (an
    engine of the fleet may serve a model this gateway has no card for)."""
    known = next((i for i in KNOWN.values() if i.model_id == model_id), None)
    return known or Identity(model_id, model_id, model_id, "", f"{model_id}, served locally by mistral-local on vLLM.")


def read_identity(directory: Path) -> Identity | None:
    """What `fetch-weights` recorded about the model in `directory` (None for directories it did not write)."""
    path = directory / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        # Records written before `created` and `temperature` were kept take the known model's.
        known = next((i for i in KNOWN.values() if i.model_id == data["model_id"]), DEFAULT)
        return Identity(**{f.name: data.get(f.name, getattr(known, f.name)) for f in fields(Identity)})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc


def system_prompt_of(directory: Path | None) -> str:
    """The system prompt a reasoning model's repository ships (Magistral's asks it to reason in [THINK]), or ""."""
    path = directory / SYSTEM_PROMPT_FILE if directory is not None else None
    try:
        return path.read_text(encoding="utf-8").strip() if path is not None and path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc


def write_identity(directory: Path, identity: Identity, **extra: str) -> None:
    """Record beside the weights which model they are (`extra`: where they came from); the system prompt keeps its
    own file."""
    record = {k: v for k, v in asdict(identity).items() if k != "system_prompt"} | extra
    (directory / IDENTITY_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def identity_overrides(model: Path | None, explicit: set[str]) -> dict[str, Any]:
    """Settings fields the directory's identity supplies: those the operator did not set."""
    identity = read_identity(model) if model is not None else None
    if identity is None:
        return {}
    named = {setting: getattr(identity, field) for field, setting in SETTINGS_FIELDS.items()}
    return {k: v for k, v in named.items() if k not in explicit}
