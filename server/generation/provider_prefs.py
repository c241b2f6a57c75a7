"""`provider` preferences (OpenRouter's provider routing) applied to the one local provider.

Every served model has one provider here: the local engine, named `provider_name`, with the configured
quantization and price. OpenRouter's filters either keep it or leave no endpoint, which OpenRouter answers with a
404 (shared/docs/openrouter-api.md §2b, §6). Filters that order or sort endpoints choose among one and change
nothing. The local provider keeps no data, so `data_collection: "deny"` and `zdr: true` keep it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from server.errors import NotFound
from server.schemas.request import MaxPrice, ProviderPreferences
from server.settings import Settings

PER_MILLION = Decimal(1_000_000)


def _slug(name: str) -> str:
    """OpenRouter matches providers by slug; "deepinfra/turbo" names a variant of "deepinfra"."""
    return name.strip().lower().split("/", 1)[0]


def _over_budget(limit: float | int | str | None, price_per_token: Decimal) -> bool:
    if limit is None:
        return False
    try:
        return price_per_token * PER_MILLION > Decimal(str(limit))  # max_price is USD per million tokens
    except InvalidOperation:
        return False


def _price_excluded(max_price: MaxPrice, settings: Settings) -> bool:
    return _over_budget(max_price.prompt, Decimal(settings.price_prompt)) or _over_budget(
        max_price.completion, Decimal(settings.price_completion)
    )


def exclusion(prefs: ProviderPreferences, settings: Settings) -> str | None:
    """Which preference leaves the local provider out (None: it stays)."""
    me = _slug(settings.provider_name)
    if prefs.only is not None and me not in {_slug(p) for p in prefs.only}:
        return "provider.only"
    if prefs.ignore is not None and me in {_slug(p) for p in prefs.ignore}:
        return "provider.ignore"
    if prefs.order is not None and prefs.allow_fallbacks is False and me not in {_slug(p) for p in prefs.order}:
        return "provider.order"
    if prefs.quantizations is not None and settings.quantization not in prefs.quantizations:
        return "provider.quantizations"
    if prefs.max_price is not None and _price_excluded(prefs.max_price, settings):
        return "provider.max_price"
    return None


def check_provider(prefs: ProviderPreferences, model: str, settings: Settings) -> None:
    """OpenRouter's 404 when the request's provider preferences leave out this server."""
    if (field := exclusion(prefs, settings)) is not None:
        raise NotFound(
            f"No endpoints found for {model} that match your provider preferences ({field}).",
            metadata={"excluded_by": field, "provider_name": settings.provider_name},
        )
