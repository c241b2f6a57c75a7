"""The catalog of a fleet whose engines serve different models: every served model listed under its own record, each
id, slug and alias resolved to the id its engines serve, the context of each model its own engines', a model no
engine serves refused as OpenRouter refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest
from openrouter.components import Model

from server.catalog import Catalog
from server.checkpoint.tiny import TINY_SYSTEM_PROMPT, write_tiny
from server.engine.lifecycle import EngineState
from server.errors import InvalidRequest, NotFound
from server.fleet.members import Fleet, Member
from server.settings import OPENROUTER_MODEL_ID, Settings
from server.workers.engine_view import EngineView

SMALL_32 = "mistralai/mistral-small-3.2-24b-instruct"


def engine(model: str, context: int | None) -> EngineView:
    view = EngineView()
    view.state, view.served_model, view.max_model_len = EngineState.READY, model, context
    return view


def fleet(*served: tuple[str, int | None]) -> Fleet:
    return Fleet([Member(f"e{i}", engine(model, context)) for i, (model, context) in enumerate(served)])


def test_every_model_of_the_fleet_is_listed_with_its_own_record() -> None:
    catalog = Catalog(Settings(model_aliases=("small",)), fleet((OPENROUTER_MODEL_ID, 8192), (SMALL_32, 4096)))
    listing = catalog.listing()
    assert [m["id"] for m in listing["data"]] == [OPENROUTER_MODEL_ID, SMALL_32] and listing["total_count"] == 2
    newer = listing["data"][1]
    assert newer["name"] == "Mistral: Mistral Small 3.2 24B"
    assert newer["hugging_face_id"] == "mistralai/Mistral-Small-3.2-24B-Instruct-2506"
    assert newer["created"] == 1750443016 and listing["data"][0]["created"] == 1742238937  # OpenRouter's dates
    assert newer["context_length"] == 4096 and listing["data"][0]["context_length"] == 8192
    endpoint = catalog.endpoints("mistralai", "mistral-small-3.2-24b-instruct")["data"]["endpoints"][0]
    assert endpoint["model_id"] == SMALL_32 and endpoint["context_length"] == 4096
    assert catalog.listing(offset=1, limit=1)["data"] == [newer]


MAGISTRAL = "mistralai/magistral-small-2509"


def test_ids_slugs_and_aliases_name_the_model_its_engines_serve() -> None:
    catalog = Catalog(Settings(model_aliases=("small",)), fleet((OPENROUTER_MODEL_ID, 8192), (SMALL_32, 4096)))
    assert catalog.served_id("mistralai/mistral-small-3.2-24b-instruct-2506") == SMALL_32  # its canonical slug
    assert catalog.served_id(f"{SMALL_32}:nitro") == SMALL_32  # a variant suffix
    assert catalog.served_id("small") == OPENROUTER_MODEL_ID  # the gateway's own model's alias
    assert catalog.resolve(None) == OPENROUTER_MODEL_ID
    assert catalog.first_served(["mistralai/magistral-small-2509", SMALL_32]) == SMALL_32
    with pytest.raises(InvalidRequest, match="mistralai/magistral-small-2509 is not a valid model ID"):
        catalog.resolve("mistralai/magistral-small-2509")
    with pytest.raises(NotFound):
        catalog.lookup("mistralai", "magistral-small-2509")


def test_with_no_engine_serving_the_gateways_model_the_default_is_the_first_served() -> None:
    catalog = Catalog(Settings(model_aliases=("small",)), fleet((SMALL_32, None), ("acme/custom-model", None)))
    assert catalog.default == SMALL_32 and catalog.resolve(None) == SMALL_32
    assert not catalog.serves(OPENROUTER_MODEL_ID) and not catalog.serves("small")  # its alias went with it
    custom = catalog.model("acme/custom-model")  # no card for it: described by its id
    assert custom["name"] == "acme/custom-model" and custom["context_length"] is None


def test_a_request_without_temperature_gets_its_models_card_default() -> None:
    """The gateway's own model: the operator's setting; any other: its card's (Small 3.2: 0.15), listed in
    `default_parameters` as OpenRouter lists it."""
    catalog = Catalog(Settings(default_temperature=0.4), fleet((OPENROUTER_MODEL_ID, 8192), (SMALL_32, 4096)))
    assert catalog.card(OPENROUTER_MODEL_ID).temperature == 0.4
    assert catalog.card(SMALL_32).temperature == 0.15
    assert [m["default_parameters"] for m in catalog.listing()["data"]] == [{"temperature": 0.4}, {"temperature": 0.15}]


def test_a_reasoning_model_is_listed_with_its_reasoning_and_its_cards_sampling() -> None:
    """Magistral Small 1.2: OpenRouter's `reasoning` record (omitted for the others), the reasoning parameters among
    the supported ones, its card's temperature and top_p; the OpenRouter SDK's own Model parses it."""
    catalog = Catalog(Settings(), fleet((OPENROUTER_MODEL_ID, 8192), (MAGISTRAL, 40960)))
    small, magistral = catalog.listing()["data"]
    assert "reasoning" not in small and "reasoning" not in small["supported_parameters"]
    assert magistral["reasoning"] == {
        "mandatory": False,
        "supported_efforts": ["xhigh", "high", "medium", "low", "minimal", "none"],
        "default_enabled": True,
        "supports_max_tokens": True,
    }
    assert {"reasoning", "include_reasoning", "reasoning_effort"} <= set(magistral["supported_parameters"])
    assert magistral["default_parameters"] == {"temperature": 0.7, "top_p": 0.95}
    assert magistral["name"] == "Mistral: Magistral Small 2509" and magistral["context_length"] == 40960
    parsed = Model.model_validate(magistral)
    assert parsed.reasoning is not None and parsed.reasoning.supports_max_tokens is True
    endpoint = catalog.endpoints("mistralai", "magistral-small-2509")["data"]["endpoints"][0]
    assert "reasoning" in endpoint["supported_parameters"]
    card = catalog.card(MAGISTRAL)
    assert card.reasoning and card.top_p == 0.95 and card.max_output == 40960


def test_the_gateways_own_reasoning_model_brings_its_repositorys_system_prompt(tmp_path: Path) -> None:
    model = write_tiny(tmp_path / "magistral", release="magistral")
    settings = Settings(model=model, model_id=MAGISTRAL)
    assert Catalog(settings, fleet((MAGISTRAL, 4096))).card(MAGISTRAL).system_prompt == TINY_SYSTEM_PROMPT
    (model / "SYSTEM_PROMPT.txt").unlink()
    assert Catalog(settings, fleet((MAGISTRAL, 4096))).card(MAGISTRAL).system_prompt == ""
