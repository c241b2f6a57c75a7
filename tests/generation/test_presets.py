"""Presets without an engine: the three ways a request names one, the request's own settings over the preset's, the
system prompt first, tools beside the request's, and clear errors for an unknown preset or a broken file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.errors import ConfigError, InvalidRequest
from server.generation.presets import apply, load_presets_file
from server.schemas.preset import Preset
from server.schemas.request import ChatRequest

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
PRESETS = {
    "brief": Preset(
        system_prompt="Answer in one sentence.",
        parameters={"temperature": 0.2, "max_tokens": 50},
        tools=[TOOL],
        provider={"sort": "price"},
    ),
    "pinned": Preset(model="acme/other", models=["acme/backup"]),
}


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], **fields})


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        ({"model": "@preset/brief"}, None),
        ({"model": "mistralai/m", "preset": "brief"}, "mistralai/m"),
        ({"model": "mistralai/m@preset/brief"}, "mistralai/m"),
    ],
)
def test_three_ways_to_name_a_preset(fields: dict[str, Any], model: str | None) -> None:
    applied, preset = apply(request(**fields), PRESETS)
    assert preset is PRESETS["brief"] and applied.model == model
    body = applied.model_dump(exclude_none=True)
    assert body["messages"][0] == {"role": "system", "content": "Answer in one sentence."}
    assert body["messages"][1]["role"] == "user"
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50 and body["provider"]["sort"] == "price"
    assert (applied.model_extra or {})["preset"] == "brief"


def test_the_requests_own_settings_win() -> None:
    own_tool = {"type": "function", "function": {"name": "lookup", "description": "mine", "parameters": {}}}
    applied, _ = apply(request(model="@preset/brief", temperature=0.9, tools=[own_tool]), PRESETS)
    body = applied.model_dump(exclude_none=True)
    assert body["temperature"] == 0.9 and body["max_tokens"] == 50
    assert [t["function"].get("description") for t in body["tools"]] == ["mine"]


def test_a_presets_model_and_fallbacks_apply_when_the_request_names_none() -> None:
    applied, _ = apply(request(model="@preset/pinned"), PRESETS)
    assert applied.model == "acme/other" and applied.models == ["acme/backup"]


def test_no_preset_leaves_the_request_as_it_was() -> None:
    req = request(model="mistralai/m")
    assert apply(req, PRESETS) == (req, None)


def test_an_unknown_preset_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="Preset 'nope' not found"):
        apply(request(model="@preset/nope"), PRESETS)


def test_presets_file(tmp_path: Path) -> None:
    good = tmp_path / "presets.yaml"
    good.write_text("presets:\n  brief:\n    system_prompt: Be brief.\n    parameters: {max_tokens: 5}\n")
    assert load_presets_file(good)["brief"].parameters == {"max_tokens": 5}
    bad = tmp_path / "bad.yaml"
    bad.write_text("presets:\n  brief:\n    sytem_prompt: typo\n")
    with pytest.raises(ConfigError, match="presets file"):
        load_presets_file(bad)
