"""The file-parser plugin for PDFs, parsed on this machine: a `file` content part becomes the document's text
(engine `pdf-text`, the default) or its pages as images for the vision model (engine `native`). OpenRouter's hosted
OCR engine (`mistral-ocr`) is refused: nothing leaves the machine.

PDFs are untrusted input, and pdfium's work grows with what a small file can ask for (one shared content stream of
millions of characters on every page). So the parts are only checked and counted here (`documents`), the request is
admitted with the files' worst case in its estimate, and only then are the documents read, by a child process of
their own (pdf_child.py) under a memory limit and a clock, a bounded number at a time: a crash or an out-of-memory
ends the child, never the worker, and the client gets a 400 (429 while every reader is busy and the queue is full)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ValidationError

from server.errors import InvalidRequest, Overloaded
from server.generation.demand import BYTES_PER_TOKEN, MAX_IMAGE_TOKENS
from server.generation.plugins import is_file
from server.schemas.request import ChatRequest, Lenient, UnsupportedPart, UserMessage

MAX_TEXT_PAGES = 500  # across all the request's documents
CHILD = Path(__file__).with_name("pdf_child.py")
PREFIX = "data:application/pdf;base64,"


class FileData(BaseModel):
    filename: str = "document.pdf"
    file_data: str


class FilePart(Lenient):
    type: Literal["file"]
    file: FileData


@dataclass(frozen=True)
class ReaderLimits:
    max_files: int
    max_chars: int
    max_images: int
    max_edge: int
    timeout_s: float
    memory_bytes: int


@dataclass(frozen=True)
class Document:
    where: str  # the part's field, for errors
    name: str
    data: str  # base64, as the client sent it


@dataclass(frozen=True)
class Documents:
    engine: str
    docs: list[Document]

    def estimate(self, limits: ReaderLimits) -> int:
        """The prompt tokens the documents may become, for admission: at most the request's characters of text, or
        every page allowed as an image at its largest."""
        if not self.docs:
            return 0
        if self.engine == "native":
            return limits.max_images * MAX_IMAGE_TOKENS
        # Text is never longer than the PDF's own bytes (three quarters of its base64), nor than the limit.
        return min(limits.max_chars, sum(len(d.data) * 3 // 4 for d in self.docs)) // BYTES_PER_TOKEN


def _engine(req: ChatRequest) -> str:
    for plugin in req.plugins or []:
        if plugin.id == "file-parser" and plugin.enabled:
            engine = ((plugin.model_extra or {}).get("pdf") or {}).get("engine", "pdf-text")
            if engine not in ("pdf-text", "native"):
                raise InvalidRequest(f"file-parser: engine {engine!r} is not available here (pdf-text or native)")
            return str(engine)
    return "pdf-text"


def _file_parts(req: ChatRequest) -> list[tuple[str, UnsupportedPart]]:
    return [
        (f"messages[{i}].content[{j}]", part)
        for i, message in enumerate(req.messages)
        if isinstance(message, UserMessage) and isinstance(message.content, list)
        for j, part in enumerate(message.content)
        if is_file(part)
    ]


def documents(req: ChatRequest, limits: ReaderLimits) -> Documents:
    """The request's PDFs, checked for shape and counted; nothing is parsed."""
    parts = _file_parts(req)
    if len(parts) > limits.max_files:
        raise InvalidRequest(f"messages: at most {limits.max_files} files per request (this request has {len(parts)})")
    docs = []
    for where, part in parts:
        try:
            file = FilePart.model_validate(part.model_dump()).file
        except ValidationError as exc:
            raise InvalidRequest(f"{where}.file: an object with file_data (a PDF as a data URL) is required") from exc
        if not file.file_data.startswith(PREFIX):
            raise InvalidRequest(f"{where}.file.file_data: a PDF as a data:application/pdf;base64 URL is required")
        docs.append(Document(where, file.filename, file.file_data.removeprefix(PREFIX)))
    return Documents(_engine(req) if docs else "pdf-text", docs)


class PdfReader:
    """Runs pdf_child.py for one request's documents: `readers` at a time, `queue` more waiting, 429 past that."""

    def __init__(self, limits: ReaderLimits, readers: int, queue: int) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(readers)
        self._queue = queue
        self._waiting = 0

    async def read(self, req: ChatRequest, found: Documents) -> ChatRequest:
        """The request with each PDF part replaced by what the engine reads: text, or page images."""
        if self._waiting >= self._queue and self._slots.locked():
            raise Overloaded("Every PDF reader is busy: try again shortly", retry_after=1)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            parsed = await self._run(self._job(found))
        finally:
            self._slots.release()
        return _replace(req, found, parsed)

    def _job(self, found: Documents) -> bytes:
        limits = self.limits
        return orjson.dumps(
            {
                "engine": found.engine,
                "max_pages": limits.max_images if found.engine == "native" else MAX_TEXT_PAGES,
                "max_chars": limits.max_chars,
                "max_edge": limits.max_edge,
                "memory_bytes": limits.memory_bytes,
                "docs": [{"where": d.where, "name": d.name, "data": d.data} for d in found.docs],
            }
        )

    async def _run(self, job: bytes) -> list[list[dict[str, Any]]]:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-I", str(CHILD),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(child.communicate(job), self.limits.timeout_s)
        except TimeoutError:
            raise InvalidRequest(
                f"The PDFs took longer than {self.limits.timeout_s:g} s to read on this server"
            ) from None
        finally:
            if child.returncode is None:  # the clock ran out, or the client left: the child goes too
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        if child.returncode != 0:
            raise InvalidRequest("The PDFs could not be read within this server's memory and safety limits")
        answer: dict[str, Any] = orjson.loads(out)
        if "error" in answer:
            raise InvalidRequest(str(answer["error"]))
        docs: list[list[dict[str, Any]]] = answer["docs"]
        return docs


def without_files(req: ChatRequest) -> ChatRequest:
    """The request without its PDF parts: what it asks for before they are read."""
    messages = [
        m.model_copy(update={"content": [p for p in m.content if not is_file(p)]})
        if isinstance(m, UserMessage) and isinstance(m.content, list)
        else m
        for m in req.messages
    ]
    return req.model_copy(update={"messages": messages})


def _replace(req: ChatRequest, found: Documents, parsed: list[list[dict[str, Any]]]) -> ChatRequest:
    body = req.model_dump(exclude_none=True, by_alias=True)
    by_place = {d.where: parts for d, parts in zip(found.docs, parsed, strict=True)}
    for i, message in enumerate(body["messages"]):
        if not isinstance(message.get("content"), list):
            continue
        content: list[dict[str, Any]] = []
        for j, part in enumerate(message["content"]):
            content += by_place.get(f"messages[{i}].content[{j}]", [part])
        message["content"] = content
    return ChatRequest.model_validate(body)
