"""OpenRouter's provider preferences against the one local provider ("Local", bf16, configured price)."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import NotFound
from server.generation.provider_prefs import check_provider, exclusion
from server.schemas.request import ProviderPreferences
from server.settings import Settings

PRICED = Settings(price_prompt="0.0000003", price_completion="0.0000005")  # $0.30 / $0.50 per million


def prefs(**kw: Any) -> ProviderPreferences:
    return ProviderPreferences.model_validate(kw)


@pytest.mark.parametrize(
    ("kw", "excluded_by"),
    [
        ({"only": ["openai", "anthropic"]}, "provider.only"),
        ({"only": []}, "provider.only"),
        ({"ignore": ["local"]}, "provider.ignore"),
        ({"ignore": ["LOCAL/turbo"]}, "provider.ignore"),
        ({"order": ["openai"], "allow_fallbacks": False}, "provider.order"),
        ({"quantizations": ["fp8", "int4"]}, "provider.quantizations"),
        ({"max_price": {"prompt": 0.1}}, "provider.max_price"),
        ({"max_price": {"completion": "0.2"}}, "provider.max_price"),
    ],
)
def test_filters_that_leave_no_endpoint(kw: dict[str, Any], excluded_by: str) -> None:
    assert exclusion(prefs(**kw), PRICED) == excluded_by
    with pytest.raises(NotFound) as info:
        check_provider(prefs(**kw), "mistralai/mistral-small-3.1-24b-instruct", PRICED)
    assert info.value.status == 404
    assert info.value.metadata == {"excluded_by": excluded_by, "provider_name": "Local"}


@pytest.mark.parametrize(
    "kw",
    [
        {"only": ["Local"]},
        {"only": ["local/fast", "openai"]},
        {"ignore": ["openai"]},
        {"order": ["openai"]},  # fallbacks allowed: the local provider still serves
        {"order": ["local"], "allow_fallbacks": False},
        {"quantizations": ["bf16"]},
        {"max_price": {"prompt": 1, "completion": "0.5"}},
        {"data_collection": "deny"},
        {"zdr": True},
        {"sort": "price"},
        {"sort": {"by": "latency", "partition": "none"}},
        {"require_parameters": True},
    ],
)
def test_filters_that_keep_the_local_provider(kw: dict[str, Any]) -> None:
    assert exclusion(prefs(**kw), PRICED) is None
