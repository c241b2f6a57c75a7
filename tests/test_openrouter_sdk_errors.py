"""Errors of every status the gateway answers without an engine, through the official OpenRouter Python SDK: each
becomes the SDK's own typed error (a body it could not parse would surface as ResponseValidationError instead)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openrouter import OpenRouter, errors

from server.auth import hash_key, new_key
from tests.served_app import gateway_settings, served_app

KEYS = {name: new_key() for name in ("ok", "off", "lean")}
SPECS = [
    {"label": "ok", "sha256": hash_key(KEYS["ok"])},
    {"label": "off", "sha256": hash_key(KEYS["off"]), "disabled": True},
    {"label": "lean", "sha256": hash_key(KEYS["lean"]), "limits": {"token_budget": 10}},
]
MODEL = "mistralai/mistral-small-3.1-24b-instruct"
HI: Any = [{"role": "user", "content": "hi"}]
LONG: Any = [{"role": "user", "content": "x" * 8000}]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = gateway_settings(api_keys=json.loads(json.dumps(SPECS)), max_body_bytes=4096)
    with served_app(settings) as base:  # its engine is nowhere: 503 for generations
        yield f"{base}/api/v1"


def sdk(url: str, key: str) -> OpenRouter:
    return OpenRouter(api_key=KEYS.get(key, key), server_url=url, retry_config=None)


CASES: list[tuple[str, str, Callable[[OpenRouter], Any], type[Exception]]] = [
    ("400", "ok", lambda s: s.chat.send(model="acme/nope", messages=HI), errors.BadRequestResponseError),
    ("401", "sk-wrong", lambda s: s.chat.send(model=MODEL, messages=HI), errors.UnauthorizedResponseError),
    ("402", "lean", lambda s: s.chat.send(model=MODEL, messages=HI, max_tokens=100),
     errors.PaymentRequiredResponseError),
    ("403", "off", lambda s: s.chat.send(model=MODEL, messages=HI), errors.ForbiddenResponseError),
    ("404", "ok", lambda s: s.generations.get_generation(id="gen-0-none"), errors.NotFoundResponseError),
    ("413", "ok", lambda s: s.chat.send(model=MODEL, messages=LONG),
     errors.PayloadTooLargeResponseError),
    ("503", "ok", lambda s: s.chat.send(model=MODEL, messages=HI), errors.ServiceUnavailableResponseError),
]  # fmt: skip


@pytest.mark.parametrize(("status", "key", "call", "error"), CASES, ids=[c[0] for c in CASES])
def test_each_status_is_the_sdks_own_error(
    url: str, status: str, key: str, call: Callable[[OpenRouter], Any], error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        call(sdk(url, key))
    assert str(info.value.data.error.code) == status  # type: ignore[attr-defined]
