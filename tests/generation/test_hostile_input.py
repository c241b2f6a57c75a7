"""Hostile input gets a 400 in OpenRouter's shape, never a 500 or a dropped connection, and nothing unbounded reaches
the engine. A gateway with no engine behind it: everything here is refused before the engine would be asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.helpers import post
from tests.support.pdfs import bomb, document_part
from tests.support.served_app import gateway_settings, served_app

USER = {"role": "user", "content": "hi"}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served_app(gateway_settings()) as base:
        yield base


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
        b'{"messages": [{"role": "user", "content": "\\udfff"}]}',
        b'{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": '
        b'{"name": "f", "description": "\\ud83d"}}]}',
    ],
    ids=["lone-high-surrogate", "lone-low-surrogate", "in-a-tool"],
)
def test_a_lone_surrogate_is_invalid_json(url: str, raw: bytes) -> None:
    """It used to pass Python's json, then fail to encode while the prompt was measured: a 500 with a traceback."""
    r = httpx.post(f"{url}/api/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Invalid JSON in request body")
    tokenize = httpx.post(f"{url}/api/v1/tokenize", content=raw, headers={"content-type": "application/json"})
    assert tokenize.status_code == 400


def test_a_paired_surrogate_escape_is_fine(url: str) -> None:
    raw = b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}], "max_tokens": 1}'
    r = httpx.post(f"{url}/api/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 503  # valid: it got as far as the (absent) engine


@pytest.mark.parametrize("header", ["x-title", "http-referer", "x-openrouter-title"])
def test_non_ascii_attribution_headers_are_taken(url: str, header: str) -> None:
    headers = [(header.encode(), "Café ☕ ünïcode".encode()), (b"content-type", b"application/json")]
    r = httpx.post(f"{url}/api/v1/chat/completions", content=b'{"messages": [{"role": "user", "content": "hi"}]}',
                   headers=headers)  # fmt: skip
    assert r.status_code == 503  # not a 500, not a dropped connection: on to the (absent) engine


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"stop": [f"s{i}" for i in range(17)]}, "stop: at most 16 sequences"),
        ({"stop": "x" * 1001}, "stop: each sequence at most 1000 characters"),
        ({"logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias: at most 1024 entries"),
        (
            {"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]},
            "tools: at most 128 tools",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "big", "schema": {"enum": ["v" * 1000 for _ in range(300)]}},
                }
            },
            "at most 262144 bytes of JSON schema and grammar",
        ),
        ({"response_format": {"type": "grammar", "grammar": "root ::= " + "a" * 300_000}}, "bytes of JSON schema"),
    ],
    ids=["stop-count", "stop-length", "logit-bias", "tools", "json-schema", "grammar"],
)
def test_what_the_engine_compiles_is_bounded(url: str, extra: dict[str, Any], message: str) -> None:
    r = post(url, {"messages": [USER], **extra})
    assert r.status_code == 400
    assert message in r.json()["error"]["message"]


def test_legacy_prompt_lists_are_bounded_like_messages(url: str) -> None:
    body = {"prompt": ["x" * 600_000, "y" * 600_000]}
    r = httpx.post(f"{url}/api/v1/completions", json=body, timeout=30)
    assert r.status_code == 400
    assert "prompt: longer than 1000000 characters" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/completions", {"prompt": [131072], "echo": True}),
        ("/api/v1/completions", {"prompt": [[5], [131072]], "echo": True}),
        ("/api/v1/detokenize", {"tokens": [131072]}),
    ],
    ids=["echo", "echo-list", "detokenize"],
)
def test_token_ids_past_the_vocabulary_are_a_400(url: str, path: str, body: dict[str, Any]) -> None:
    """vLLM answered these with a 500 ("Invalid token for decoding"), found by schemathesis."""
    r = httpx.post(f"{url}{path}", json=body, timeout=30)
    assert r.status_code == 400
    assert "less than 131072" in r.json()["error"]["message"]


@pytest.mark.parametrize("prompt", [[5, 6], [[5], [6]]])
def test_echoing_a_prompt_of_token_ids_is_a_400(url: str, prompt: Any) -> None:
    """vLLM 0.32 answered these with a 500 (it has no text to echo), found by schemathesis."""
    r = httpx.post(f"{url}/api/v1/completions", json={"prompt": prompt, "echo": True}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "echo: the prompt must be text (a prompt of token ids cannot be echoed)"


def test_a_file_part_that_is_not_an_object_is_a_400(url: str) -> None:
    with httpx.Client(timeout=30) as client:
        r = client.post(
            f"{url}/api/v1/chat/completions", json={"messages": [file_message({"type": "file", "file": 5})]}
        )
        assert r.status_code == 400 and "an object with file_data" in r.json()["error"]["message"]
        assert client.get(f"{url}/health/live").status_code == 200  # the connection is kept


def test_pdfs_are_read_only_once_the_request_is_admitted(url: str) -> None:
    """A PDF that asks pdfium for 16M characters (7 s and 1.6 GB each page, then a 400 for its length) is not read
    while the request cannot be admitted: this gateway has no engine, so it is a 503 at once (the PDF used to be read
    first, as a key over its rate limit paid for the parsing and got a 400 instead of its 429)."""
    r = post(url, {"messages": [file_message(document_part(bomb(2, 8_000_000)))]}, timeout=30)
    assert r.status_code == 503, r.text


def file_message(part: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": "read this"}, part]}
