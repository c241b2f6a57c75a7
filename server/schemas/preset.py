"""An operator-defined preset (server/generation/presets.py applies them): its fields, as settings hold them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    models: list[str] | None = None
    system_prompt: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    provider: dict[str, Any] | None = None
    cache_enabled: bool = False
    cache_ttl_seconds: int | None = Field(None, ge=1, le=86400)
