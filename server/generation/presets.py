"""OpenRouter's presets, defined by the operator (a YAML file, or JSON in the environment): a named system prompt,
parameters, tools, provider preferences and model, that a request names instead of repeating them.

A request names one as its model (`@preset/NAME`), in the `preset` field, or after its model (`MODEL@preset/NAME`).
What the request itself sets wins over the preset; the preset's system prompt comes first, before the request's own
messages; its tools are offered beside the request's (the request's own win on a name). A preset may turn the
response cache on for every request that names it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from server.errors import ConfigError, InvalidRequest
from server.schemas.preset import Preset
from server.schemas.request import ChatRequest

if TYPE_CHECKING:
    from server.settings import Settings

PREFIX = "@preset/"


def load_presets_file(path: Path) -> dict[str, Preset]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {str(name): Preset.model_validate(p) for name, p in (data.get("presets") or {}).items()}
    except (OSError, yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ConfigError(f"presets file {path} is invalid: {exc}") from exc


def presets_of(settings: Settings) -> dict[str, Preset]:
    """The configured presets: the file's, then the environment's (which win on a name)."""
    found = load_presets_file(settings.presets_file) if settings.presets_file is not None else {}
    return found | settings.presets


def named(req: ChatRequest) -> tuple[str | None, str | None]:
    """(the preset's name, the model the request names besides it)."""
    model, extra = req.model, req.model_extra or {}
    if model is not None and model.startswith(PREFIX):
        return model[len(PREFIX) :], None
    if model is not None and PREFIX in model:
        own, _, name = model.partition(PREFIX)
        return name, own.rstrip("@") or None
    preset = extra.get("preset")
    return (str(preset) if preset is not None else None), model


def with_preset(body: dict[str, Any], preset: Preset, model: str | None) -> dict[str, Any]:
    """A request body with the preset's settings under its own (`model`: the one named beside the preset). Applied
    to the typed request, and to the client's raw body that a hosted upstream gets (without the preset's name, which
    the upstream would look up among its own presets)."""
    own = {k: v for k, v in body.items() if k not in ("model", "preset")}
    merged: dict[str, Any] = {**preset.parameters, **own}
    merged["model"] = model or preset.model
    if preset.models is not None and "models" not in own:
        merged["models"] = preset.models
    if preset.provider is not None and "provider" not in own:
        merged["provider"] = preset.provider
    if preset.system_prompt:
        merged["messages"] = [{"role": "system", "content": preset.system_prompt}, *own["messages"]]
    if preset.tools:
        mine = {t.get("function", {}).get("name") for t in own.get("tools", [])}
        theirs = [t for t in preset.tools if t.get("function", {}).get("name") not in mine]
        merged["tools"] = [*own.get("tools", []), *theirs]
    return {k: v for k, v in merged.items() if v is not None}


def apply(req: ChatRequest, presets: dict[str, Preset]) -> tuple[ChatRequest, Preset | None]:
    """The request with its preset's settings under its own."""
    name, model = named(req)
    if name is None:
        return req, None
    preset = presets.get(name)
    if preset is None:
        raise InvalidRequest(f"Preset '{name}' not found")
    own = req.model_dump(exclude_none=True, by_alias=True)
    return ChatRequest.model_validate(with_preset(own, preset, model) | {"preset": name}), preset
