"""The plugins without an engine: response-healing repairs what is not JSON and leaves what is; the file-parser reads
PDFs into text or page images (and refuses what it cannot read); the web plugins are refused with OpenRouter's 404."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import orjson
import pytest
from PIL import Image

from server.errors import InvalidRequest, NotFound
from server.generation.plugins import files_of, heal_wanted, prepare, refuse_web
from server.generation.plugins.file_parser import parse_files
from server.generation.plugins.response_healing import heal
from server.schemas.request import ChatRequest
from tests.pdfs import file_part

JSON_ASKED = {"response_format": {"type": "json_object"}, "plugins": [{"id": "response-healing"}]}


def chat(content: Any, **fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": content}], **fields})


def answer(content: str | None) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.mark.parametrize(
    ("given", "healed"),
    [
        ('```json\n{"unit": "kg",}\n```', {"unit": "kg"}),
        ('{"unit": "kg", "n": 3', {"unit": "kg", "n": 3}),
        ('Sure! {"a": [1, 2', {"a": [1, 2]}),
    ],
)
def test_broken_json_is_repaired(given: str, healed: dict[str, Any]) -> None:
    assert orjson.loads(heal(answer(given))["choices"][0]["message"]["content"]) == healed


def test_valid_json_and_non_json_answers_stay_as_they_came() -> None:
    assert heal(answer('{"a": "x,}"}'))["choices"][0]["message"]["content"] == '{"a": "x,}"}'
    assert heal(answer(None))["choices"][0]["message"]["content"] is None


def test_healing_only_when_json_was_asked_for_and_not_streamed() -> None:
    assert heal_wanted(chat("hi", **JSON_ASKED))
    assert not heal_wanted(chat("hi", **JSON_ASKED, stream=True))
    assert not heal_wanted(chat("hi", plugins=[{"id": "response-healing"}]))
    assert not heal_wanted(chat("hi", response_format={"type": "json_object"}))


@pytest.mark.parametrize(
    ("fields", "middle_out"),
    [
        ({}, False),
        ({"transforms": ["middle-out"]}, True),
        ({"plugins": [{"id": "context-compression"}]}, True),
        ({"plugins": [{"id": "context-compression", "enabled": False}]}, False),
        ({"plugins": [{"id": "response-healing"}]}, False),
    ],
)
def test_compression_is_asked_by_the_middle_out_transform_or_its_plugin(
    fields: dict[str, Any], middle_out: bool
) -> None:
    _, wanted = asyncio.run(prepare(chat("hi", **fields), max_images=8, max_edge=1540))
    assert wanted.middle_out is middle_out
    assert not wanted.heal_json


def test_a_pdf_becomes_its_text() -> None:
    req = chat([{"type": "text", "text": "Total?"}, file_part("Invoice 4711 total 99 EUR", "Thank you")])
    assert any(files_of(m) for m in req.messages)
    parsed = asyncio.run(parse_files(req, max_images=4, max_edge=1540))
    question, document = parsed.model_dump()["messages"][0]["content"]
    assert question["text"] == "Total?"
    assert document["text"] == '<file name="invoice.pdf">\nInvoice 4711 total 99 EUR\n\nThank you\n</file>'


def test_native_engine_gives_the_pages_as_images() -> None:
    plugins = [{"id": "file-parser", "pdf": {"engine": "native"}}]
    req = chat([file_part("One", "Two")], plugins=plugins)
    parsed = asyncio.run(parse_files(req, max_images=4, max_edge=800))
    parts = parsed.model_dump()["messages"][0]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 2
    page = Image.open(io.BytesIO(base64.b64decode(images[0].split(",", 1)[1])))
    assert page.size == (800, 400)  # a 400x200 pt page, its longest side at max_edge
    with pytest.raises(InvalidRequest, match="over the 1 images"):
        asyncio.run(parse_files(req, max_images=1, max_edge=800))


@pytest.mark.parametrize(
    ("part", "plugins", "message"),
    [
        ({"type": "file", "file": {"filename": "x.pdf", "file_data": "https://example.org/x.pdf"}}, None, "data:"),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,bm90IGEgcGRm"}}, None, "as a PDF"),
        (file_part("x"), [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}], "not available here"),
    ],
)
def test_what_cannot_be_read_is_a_400(part: dict[str, Any], plugins: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        asyncio.run(parse_files(chat([part], plugins=plugins), max_images=4, max_edge=800))


def test_web_plugins_are_openrouters_404() -> None:
    for fields in ({"plugins": [{"id": "web"}]}, {"web_search_options": {"search_context_size": "low"}}):
        with pytest.raises(NotFound, match="web search needs a hosted upstream"):
            refuse_web(chat("hi", **fields))
    refuse_web(chat("hi", plugins=[{"id": "web", "enabled": False}]))  # switched off: nothing to refuse
