"""What a translated request (OpenAI Responses, Anthropic Messages) carries just as OpenRouter chat does: the model
order, sampling, the stream flag, the session, provider preferences and plugins. Each dialect adds its own fields."""

from __future__ import annotations

from typing import Any

from server.schemas.request import Lenient, Plugin, ProviderPreferences


class SharedFields(Lenient):
    model: str | None = None
    models: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    session_id: str | None = None
    provider: ProviderPreferences | None = None  # checked by its schema: taken as it is
    plugins: list[Plugin] | None = None

    def chat_body(self, messages: list[dict[str, Any]], **own: Any) -> dict[str, Any]:
        """The chat request's body: `messages`, these fields and the dialect's `own` as chat names them (those
        left None are dropped), with usage always reported (both APIs report it)."""
        fields = {name: getattr(self, name) for name in SharedFields.model_fields} | own
        return {"messages": messages, "usage": {"include": True}, **{k: v for k, v in fields.items() if v is not None}}
