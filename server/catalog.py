"""The served models as OpenRouter describes models: ids each answers to, their Model and endpoint records."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from server.checkpoint.identity import Identity, identity_of, system_prompt_of
from server.errors import InvalidRequest, NotFound
from server.fleet.members import Fleet
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
# A reasoning model's (Magistral) besides: a budget in tokens, or an effort that takes a share of max_tokens.
REASONING_PARAMETERS = ["reasoning", "include_reasoning", "reasoning_effort"]
REASONING = {
    "mandatory": False,
    "supported_efforts": ["xhigh", "high", "medium", "low", "minimal", "none"],
    "default_enabled": True,
    "supports_max_tokens": True,
}


def supported_parameters(model: Identity) -> list[str]:
    return SUPPORTED_PARAMETERS + (REASONING_PARAMETERS if model.reasoning else [])


def base_id(model: str) -> str:
    """`author/slug:variant` -> `author/slug` (OpenRouter's variant suffixes: :free, :nitro, :floor, ...)."""
    return model.split(":", 1)[0]


class Catalog:
    """Every model the fleet's engines serve: the gateway's own (named by the settings, with its aliases) and each
    other model an engine of the fleet serves (described by server/checkpoint/identity.py)."""

    def __init__(self, settings: Settings, fleet: Fleet) -> None:
        self.settings = settings
        self._fleet = fleet
        self._served: tuple[str, ...] = ()
        self._names: dict[str, str] = {}  # every id, slug and alias -> the id the engines serve it as
        self._models: dict[str, Identity] = {}
        # The gateway's own model as the settings name it (a known model's listing date kept).
        self._own = replace(
            identity_of(settings.model_id),
            canonical_slug=settings.canonical_slug,
            model_name=settings.model_name,
            hugging_face_id=settings.hugging_face_id,
            model_description=settings.model_description,
            temperature=settings.default_temperature,
        )
        if self._own.reasoning:
            self._own = replace(self._own, system_prompt=system_prompt_of(settings.model))

    def _table(self) -> dict[str, str]:
        """Built again only when the fleet's models change (a worker learns them from its control process)."""
        served = tuple(m for m in self._fleet.serving if m)
        if served != self._served:
            s, own = self.settings, self._own
            self._models = {m: own if m == s.model_id else identity_of(m) for m in served}
            names = {a: s.model_id for a in s.model_aliases if s.model_id in served}
            for model, identity in self._models.items():
                names |= {identity.canonical_slug: model, model: model}
            self._served, self._names = served, names
        return self._names

    @property
    def default(self) -> str:
        """The model a request that names none gets: the gateway's own, else the first an engine serves."""
        self._table()
        own, served = self.settings.model_id, self._served
        return own if own in served or not served else served[0]

    def served_id(self, requested: str) -> str:
        """The id the engines serve `requested` (an id, slug or alias, with any variant) as."""
        return self._table().get(base_id(requested), self.default)

    def card(self, served: str) -> Identity:
        """What the engines serve as `served` is (its sampling defaults, whether it reasons): its card (the gateway's
        own: as the settings name it)."""
        self._table()
        return self._models.get(served, self._own)

    def resolve(self, requested: str | None) -> str:
        """The model id to echo back for `requested`; OpenRouter's 400 for anything this server does not serve."""
        if requested is None:
            return self.default
        if not self.serves(requested):
            raise InvalidRequest(f"{requested} is not a valid model ID")
        return requested

    def first_served(self, order: list[str]) -> str:
        """The first of OpenRouter's model order (`model`, then `models`) this server serves; none: the first's
        400 (no model named: the default model)."""
        served = next((m for m in order if self.serves(m)), None)
        return self.resolve(served or (order[0] if order else None))

    def serves(self, requested: str) -> bool:
        return base_id(requested) in self._table()

    def lookup(self, author: str, slug: str) -> dict[str, Any]:
        if not self.serves(f"{author}/{slug}"):
            raise NotFound(f"Model {author}/{slug} not found")
        return self.model(self.served_id(f"{author}/{slug}"))

    def model(self, served: str) -> dict[str, Any]:
        s, m = self.settings, self._models[served]
        context = self._fleet.contexts.get(served)  # the engines' served maximum, known once one is ready
        return {
            "id": m.model_id,
            "canonical_slug": m.canonical_slug,
            "hugging_face_id": m.hugging_face_id,
            "name": m.model_name,
            "created": m.created,
            "description": m.model_description,
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
            "supported_parameters": supported_parameters(m),
            "default_parameters": {"temperature": m.temperature} | ({"top_p": m.top_p} if m.top_p else {}),
            "supported_voices": None,
            "knowledge_cutoff": "2023-10-31",
            "expiration_date": None,
            "links": {"details": f"/api/v1/models/{m.canonical_slug}/endpoints"},
        } | ({"reasoning": REASONING} if m.reasoning else {})

    def endpoints(self, author: str, slug: str) -> dict[str, Any]:
        model = self.lookup(author, slug)
        s = self.settings
        endpoint = {
            "name": f"{s.provider_name} | {model['canonical_slug']}",
            "model_id": model["id"],
            "model_name": model["name"],
            "context_length": model["context_length"],
            "pricing": model["pricing"],
            "provider_name": s.provider_name,
            "tag": s.provider_name.lower(),
            "quantization": s.quantization,
            "max_completion_tokens": model["context_length"],
            "max_prompt_tokens": model["context_length"],
            "supported_parameters": model["supported_parameters"],
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
        """OpenRouter's page of models (`offset`, `limit`; the SDKs page through them): those the fleet serves."""
        self._table()
        models = [self.model(m) for m in self._served]
        end = len(models) if limit is None else offset + limit
        more = end < len(models)
        following = f"/api/v1/models?offset={end}&limit={limit}" if more else None
        return {"data": models[offset:end], "total_count": len(models), "links": {"next": following}}
