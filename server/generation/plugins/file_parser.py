"""The file-parser plugin for PDFs, parsed on this machine: a `file` content part becomes the document's text
(engine `pdf-text`, the default) or its pages as images for the vision model (engine `native`). OpenRouter's hosted
OCR engine (`mistral-ocr`) is refused: nothing leaves the machine.

PDFs are untrusted input: they are read by pdfium (pypdfium2) on one thread of their own (pdfium is not
thread-safe) off the event loop, at most MAX_TEXT_PAGES pages of text; pages as images count as images against the
request's image limit, each rendered at most `max_edge` pixels on its longest side.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pypdfium2 as pdfium

from server.errors import InvalidRequest
from server.generation.plugins import files_of
from server.schemas.request import ChatRequest, UnsupportedPart

MAX_TEXT_PAGES = 500
_PDFIUM = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdfium")
_DATA_URL = re.compile(r"^data:application/pdf;base64,(?P<data>.+)$", re.DOTALL)


def _engine(req: ChatRequest) -> str:
    for plugin in req.plugins or []:
        if plugin.id == "file-parser" and plugin.enabled:
            engine = ((plugin.model_extra or {}).get("pdf") or {}).get("engine", "pdf-text")
            if engine not in ("pdf-text", "native"):
                raise InvalidRequest(f"file-parser: engine {engine!r} is not available here (pdf-text or native)")
            return str(engine)
    return "pdf-text"


def _pdf_bytes(part: UnsupportedPart, where: str) -> tuple[str, bytes]:
    file = (part.model_extra or {}).get("file") or {}
    name = str(file.get("filename") or "document.pdf")
    found = _DATA_URL.match(str(file.get("file_data") or ""))
    if found is None:
        raise InvalidRequest(f"{where}.file.file_data: a PDF as a data:application/pdf;base64 URL is required")
    try:
        return name, base64.b64decode(found["data"], validate=True)
    except ValueError as exc:
        raise InvalidRequest(f"{where}.file.file_data: not valid base64") from exc


def _text(data: bytes, name: str) -> list[dict[str, Any]]:
    pdf = pdfium.PdfDocument(data)
    try:
        if len(pdf) > MAX_TEXT_PAGES:
            raise InvalidRequest(f"{name}: more than {MAX_TEXT_PAGES} pages")
        pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()
    text = "\n\n".join(p.strip() for p in pages)
    return [{"type": "text", "text": f'<file name="{name}">\n{text}\n</file>'}]


def _pages(data: bytes, name: str, max_images: int, max_edge: int) -> list[dict[str, Any]]:
    pdf = pdfium.PdfDocument(data)
    try:
        if len(pdf) > max_images:
            raise InvalidRequest(f"{name}: {len(pdf)} pages, over the {max_images} images a request may carry")
        parts: list[dict[str, Any]] = [{"type": "text", "text": f'<file name="{name}"> as page images:'}]
        for i in range(len(pdf)):
            page = pdf[i]
            scale = min(2.0, max_edge / max(page.get_width(), page.get_height()))
            png = io.BytesIO()
            page.render(scale=scale).to_pil().save(png, format="PNG")
            url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
            parts.append({"type": "image_url", "image_url": {"url": url}})
    finally:
        pdf.close()
    return parts


def _read(data: bytes, name: str, where: str, engine: str, max_images: int, max_edge: int) -> list[dict[str, Any]]:
    try:
        return _pages(data, name, max_images, max_edge) if engine == "native" else _text(data, name)
    except pdfium.PdfiumError as exc:
        raise InvalidRequest(f"{where}: {name} could not be read as a PDF ({exc})") from exc


async def parse_files(req: ChatRequest, max_images: int, max_edge: int) -> ChatRequest:
    """The request with each PDF part replaced by what the engine reads: text, or page images."""
    engine = _engine(req)
    body = req.model_dump(exclude_none=True, by_alias=True)
    loop = asyncio.get_running_loop()
    for i, message in enumerate(req.messages):
        if not files_of(message) or not isinstance(message.content, list):
            continue
        content: list[dict[str, Any]] = []
        for j, part in enumerate(message.content):
            if not (isinstance(part, UnsupportedPart) and part.type == "file"):
                content.append(body["messages"][i]["content"][j])
                continue
            where = f"messages[{i}].content[{j}]"
            name, data = _pdf_bytes(part, where)
            content += await loop.run_in_executor(_PDFIUM, _read, data, name, where, engine, max_images, max_edge)
        body["messages"][i]["content"] = content
    return ChatRequest.model_validate(body)
