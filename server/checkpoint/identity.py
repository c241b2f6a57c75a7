"""Which model a weights directory holds, as `fetch-weights` recorded it, and how it is served under that name.

Mistral Small 3.2 has 3.1's architecture and files; only its OpenRouter id, slug and name differ. Recording them
beside the weights lets `serve --model DIR` name the model right without flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from server.errors import ConfigError

IDENTITY_FILE = "served-model.json"


@dataclass(frozen=True)
class Identity:
    """How the model in a directory is served: OpenRouter's id, canonical slug and display name."""

    model_id: str
    canonical_slug: str
    model_name: str
    hugging_face_id: str
    model_description: str


KNOWN: dict[str, Identity] = {
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": Identity(
        "mistralai/mistral-small-3.1-24b-instruct",
        "mistralai/mistral-small-3.1-24b-instruct-2503",
        "Mistral: Mistral Small 3.1 24B",
        "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
        "Mistral Small 3.1 24B Instruct: 24 billion parameters, text and image input, 128k context, function "
        "calling. Served locally by mistral-local on vLLM; nothing leaves this machine.",
    ),
    "mistralai/Mistral-Small-3.2-24B-Instruct-2506": Identity(
        "mistralai/mistral-small-3.2-24b-instruct",
        "mistralai/mistral-small-3.2-24b-instruct-2506",
        "Mistral: Mistral Small 3.2 24B",
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "Mistral Small 3.2 24B Instruct, the update of Mistral Small 3.1 (same architecture): text and image input, "
        "128k context, function calling. Served locally by mistral-local on vLLM; nothing leaves this machine.",
    ),
}
DEFAULT = KNOWN["mistralai/Mistral-Small-3.1-24B-Instruct-2503"]


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
        return Identity(**{k: data[k] for k in Identity.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc


def identity_overrides(model: Path | None, explicit: set[str]) -> dict[str, Any]:
    """Settings fields the directory's identity supplies: those the operator did not set."""
    identity = read_identity(model) if model is not None else None
    if identity is None:
        return {}
    return {k: v for k, v in asdict(identity).items() if k not in explicit}
