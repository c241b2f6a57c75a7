"""The plugins without an engine: response-healing repairs what is not JSON and leaves what is; the file-parser reads
PDFs into text or page images (and refuses what it cannot read); the web plugins are refused with OpenRouter's 404."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import orjson
import psutil
import pytest
from PIL import Image

from server.errors import InvalidRequest, NotFound, Overloaded
from server.generation.plugins import heal_wanted, refuse_web, wanted
from server.generation.plugins.file_parser import PdfReader, ReaderLimits, documents, without_files
from server.generation.plugins.response_healing import MAX_HEAL_CHARS, heal_now
from server.schemas.request import ChatRequest
from tests.support.pdfs import bomb, document_part, file_part, pdf

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
    assert orjson.loads(heal_now(answer(given))["choices"][0]["message"]["content"]) == healed


def test_valid_json_and_non_json_answers_stay_as_they_came() -> None:
    assert heal_now(answer('{"a": "x,}"}'))["choices"][0]["message"]["content"] == '{"a": "x,}"}'
    assert heal_now(answer(None))["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    "given",
    [
        "[" * 5000,  # json-repair: "Input nesting exceeds the supported parser recursion depth"
        '{"a": ' * 600 + "1",
        "{1" * (MAX_HEAL_CHARS // 2 + 1),  # over the cap: not even tried (json-repair takes seconds on it)
    ],
)
def test_what_cannot_be_healed_is_returned_as_generated(given: str) -> None:
    assert heal_now(answer(given))["choices"][0]["message"]["content"] == given


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
    asked = wanted(chat("hi", **fields))
    assert asked.middle_out is middle_out
    assert not asked.heal_json


def limits(**given: Any) -> ReaderLimits:
    return ReaderLimits(
        **{"max_files": 4, "max_chars": 1_000_000, "max_images": 4, "max_edge": 1540, "timeout_s": 60}
        | {"memory_bytes": 1 << 30}
        | given
    )


def read(req: ChatRequest, readers: int = 1, queue: int = 4, **given: Any) -> ChatRequest:
    reader_limits = limits(**given)

    async def run() -> ChatRequest:
        return await PdfReader(reader_limits, readers, queue).read(req, documents(req, reader_limits))

    return asyncio.run(run())


NATIVE = [{"id": "file-parser", "pdf": {"engine": "native"}}]


def test_a_pdf_becomes_its_text() -> None:
    req = chat([{"type": "text", "text": "Total?"}, file_part("Invoice 4711 total 99 EUR", "Thank you")])
    question, document = read(req).model_dump()["messages"][0]["content"]
    assert question["text"] == "Total?"
    assert document["text"] == '<file name="invoice.pdf">\nInvoice 4711 total 99 EUR\n\nThank you\n</file>'
    # Before it is read, the request asks for the rest of itself and the document's worst case.
    assert without_files(req).model_dump(exclude_none=True)["messages"][0]["content"] == [
        {"type": "text", "text": "Total?"}
    ]
    assert documents(req, limits()).estimate(limits()) > 0


def test_native_engine_gives_the_pages_as_images() -> None:
    req = chat([file_part("One", "Two")], plugins=NATIVE)
    parts = read(req, max_edge=800).model_dump()["messages"][0]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 2
    page = Image.open(io.BytesIO(base64.b64decode(images[0].split(",", 1)[1])))
    assert page.size == (800, 400)  # a 400x200 pt page, its longest side at max_edge
    with pytest.raises(InvalidRequest, match="more pages than the 1 images"):
        read(req, max_images=1)


def test_the_page_count_is_for_the_whole_request() -> None:
    """Three documents of two pages each, native: six pages where four images are allowed, refused before any page
    is rendered; as text, 500 pages across the documents."""
    req = chat([file_part("a", "b"), file_part("c", "d"), file_part("e", "f")], plugins=NATIVE)
    with pytest.raises(InvalidRequest, match="more pages than the 4 images"):
        read(req)
    many = chat([document_part(bomb(300, 1)), document_part(bomb(300, 1))])
    with pytest.raises(InvalidRequest, match="more pages than the 500 pages of text"):
        read(many)


def test_text_stops_at_the_character_limit() -> None:
    req = chat([document_part(bomb(3, 400)), document_part(bomb(3, 400))])
    assert len(read(req, max_chars=2400).model_dump()["messages"][0]["content"]) == 2
    with pytest.raises(InvalidRequest, match="longer than the 2000 characters"):
        read(req, max_chars=2000)


def test_a_document_that_asks_for_gigabytes_ends_the_reader_not_the_process() -> None:
    """The review's bomb: two pages sharing one Flate stream of 8M characters (8.5 KB), 1.7 GB in pdfium. The reader
    hits its memory limit and ends; this process's memory does not grow with it."""
    before = psutil.Process().memory_info().rss
    req = chat([document_part(bomb(2, 8_000_000))])
    with pytest.raises(InvalidRequest, match="memory and safety limits"):
        read(req, memory_bytes=512 << 20)
    assert psutil.Process().memory_info().rss - before < 100 << 20


def test_a_reader_past_its_clock_is_stopped() -> None:
    req = chat([document_part(bomb(2, 8_000_000))])  # about 7 s of pdfium for its first page
    with pytest.raises(InvalidRequest, match=r"took longer than 0\.5 s"):
        read(req, timeout_s=0.5, memory_bytes=4 << 30)
    assert not [p for p in psutil.Process().children() if "pdf_child.py" in command(p)]  # killed and reaped


def command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone meanwhile
        return ""


def test_a_full_queue_is_a_429() -> None:
    """One reader busy, nobody may wait: the next request is told to come back, and the first still succeeds."""
    slow = chat([document_part(bomb(1, 500_000))])
    quick = chat([file_part("x")])
    reader_limits = limits()

    async def both() -> tuple[ChatRequest | BaseException, ...]:
        reader = PdfReader(reader_limits, readers=1, queue=0)
        first = asyncio.create_task(reader.read(slow, documents(slow, reader_limits)))
        await asyncio.sleep(0.05)
        second = reader.read(quick, documents(quick, reader_limits))
        return tuple(await asyncio.gather(first, second, return_exceptions=True))

    first, second = asyncio.run(both())
    assert isinstance(first, ChatRequest)
    assert isinstance(second, Overloaded) and second.status == 429


@pytest.mark.parametrize(
    ("part", "plugins", "message"),
    [
        ({"type": "file", "file": {"filename": "x.pdf", "file_data": "https://example.org/x.pdf"}}, None, "data:"),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,bm90IGEgcGRm"}}, None, "as a PDF"),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,@@@"}}, None, "not valid base64"),
        (file_part("x"), [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}], "not available here"),
        ({"type": "file", "file": 5}, None, "an object with file_data"),
        ({"type": "file", "file": {"file_data": ["x"]}}, None, "an object with file_data"),
        # A crop box outside the media box: a page with no area (a ZeroDivisionError once).
        (document_part(pdf("x", box="/MediaBox [0 0 400 200] /CropBox [1000 1000 1100 1100]")), NATIVE, "no area"),
    ],
)
def test_what_cannot_be_read_is_a_400(part: dict[str, Any], plugins: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        read(chat([part], plugins=plugins))


def test_files_per_request_are_capped() -> None:
    with pytest.raises(InvalidRequest, match="at most 2 files per request"):
        documents(chat([file_part("a"), file_part("b"), file_part("c")]), limits(max_files=2))


def test_web_plugins_are_openrouters_404() -> None:
    for fields in ({"plugins": [{"id": "web"}]}, {"web_search_options": {"search_context_size": "low"}}):
        with pytest.raises(NotFound, match="web search needs a hosted upstream"):
            refuse_web(chat("hi", **fields))
    refuse_web(chat("hi", plugins=[{"id": "web", "enabled": False}]))  # switched off: nothing to refuse
