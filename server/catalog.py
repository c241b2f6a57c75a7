"""The served model as OpenRouter describes models: ids it answers to, its Model and endpoint records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.errors import InvalidRequest, NotFound
from server.settings import Settings

# What really works through this gateway on vLLM (tests exercise each); OpenRouter's vocabulary.
SUPPORTED_PARAMETERS = [
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "max_tokens",
    "max_completion_tokens",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "response_format",
    "structured_outputs",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
]
CREATED = 1742238937  # OpenRouter's listing date for Mistral Small 3.1


def base_id(model: str) -> str:
    """`author/slug:variant` -> `author/slug` (OpenRouter's variant suffixes: :free, :nitro, :floor, ...)."""
    return model.split(":", 1)[0]


class Catalog:
    def __init__(self, settings: Settings, context_length: Callable[[], int | None]) -> None:
        self.settings = settings
        self._context_length = context_length  # the engine's served maximum, known once it is ready
        self._ids = {settings.model_id, settings.canonical_slug, *settings.model_aliases}

    def resolve(self, requested: str | None) -> str:
        """The model id to echo back for `requested`; OpenRouter's 400 for anything this server does not serve."""
        if requested is None:
            return self.settings.model_id
        if base_id(requested) not in self._ids:
            raise InvalidRequest(f"{requested} is not a valid model ID")
        return requested

    def first_served(self, order: list[str]) -> str:
        """The first of OpenRouter's model order (`model`, then `models`) this server serves; none: the first's
        400 (no model named: the served model)."""
        served = next((m for m in order if self.serves(m)), None)
        return self.resolve(served or (order[0] if order else None))

    def serves(self, requested: str) -> bool:
        return base_id(requested) in self._ids

    def lookup(self, author: str, slug: str) -> dict[str, Any]:
        if not self.serves(f"{author}/{slug}"):
            raise NotFound(f"Model {author}/{slug} not found")
        return self.model()

    def model(self) -> dict[str, Any]:
        s = self.settings
        context = self._context_length()
        return {
            "id": s.model_id,
            "canonical_slug": s.canonical_slug,
            "hugging_face_id": s.hugging_face_id,
            "name": s.model_name,
            "created": CREATED,
            "description": s.model_description,
            "context_length": context,
            "architecture": {
                "modality": "text+image->text",
                "input_modalities": ["text", "image"],
                "output_modalities": ["text"],
                "tokenizer": "Mistral",
                "instruct_type": None,
            },
            "pricing": {"prompt": s.price_prompt, "completion": s.price_completion},
            "top_provider": {"context_length": context, "max_completion_tokens": context, "is_moderated": False},
            "per_request_limits": None,
            "supported_parameters": SUPPORTED_PARAMETERS,
            "default_parameters": {"temperature": s.default_temperature},
            "supported_voices": None,
            "knowledge_cutoff": "2023-10-31",
            "expiration_date": None,
            "links": {"details": f"/api/v1/models/{s.canonical_slug}/endpoints"},
        }

    def endpoints(self, author: str, slug: str) -> dict[str, Any]:
        model = self.lookup(author, slug)
        s = self.settings
        endpoint = {
            "name": f"{s.provider_name} | {s.canonical_slug}",
            "model_id": s.model_id,
            "model_name": s.model_name,
            "context_length": model["context_length"],
            "pricing": model["pricing"],
            "provider_name": s.provider_name,
            "tag": s.provider_name.lower(),
            "quantization": s.quantization,
            "max_completion_tokens": model["context_length"],
            "max_prompt_tokens": model["context_length"],
            "supported_parameters": SUPPORTED_PARAMETERS,
            "uptime_last_30m": None,
            "uptime_last_5m": None,
            "uptime_last_1d": None,
            "supports_implicit_caching": True,
            "supports_tool_choice": {"auto": True, "function": True, "none": True, "required": True},
            "supports_diarization": False,
            "native_tools": {},
            "service_tier": None,
            "latency_last_30m": None,
            "throughput_last_30m": None,
        }
        keys = ("id", "name", "created", "description", "architecture")
        return {"data": {**{k: model[k] for k in keys}, "endpoints": [endpoint]}}

    def listing(self, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """OpenRouter's page of models (`offset`, `limit`; the SDKs page through them): this server serves one."""
        models = [self.model()]
        end = len(models) if limit is None else offset + limit
        more = end < len(models)
        following = f"/api/v1/models?offset={end}&limit={limit}" if more else None
        return {"data": models[offset:end], "total_count": len(models), "links": {"next": following}}
