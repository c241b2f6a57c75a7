"""Reads the PDFs of one request in a child process of its own (server/generation/plugins/file_parser.py starts it
under a memory limit and a clock, so a hostile document kills this process, never the gateway's worker).

Standard input: one JSON object, {"engine", "max_pages", "max_chars", "max_edge", "memory_bytes", "docs": [{"where",
"name", "data"}]}, data in base64. Standard output: {"docs": [[part, ...], ...]}, the engine parts for each document,
or {"error": message} for documents that are refused. Run by path with `python -I`: it imports nothing of the server."""

from __future__ import annotations

import base64
import binascii
import io
import json
import resource
import sys
from typing import Any

import pypdfium2 as pdfium


class Refused(Exception):
    """The message the client reads (a 400)."""


def _open(docs: list[dict[str, str]], max_pages: int, engine: str) -> list[pdfium.PdfDocument]:
    """Every document opened, and the pages of all of them counted, before any page is read."""
    opened, pages = [], 0
    for doc in docs:
        try:
            pdf = pdfium.PdfDocument(base64.b64decode(doc["data"], validate=True))
        except binascii.Error as exc:
            raise Refused(f"{doc['where']}.file.file_data: not valid base64") from exc
        except pdfium.PdfiumError as exc:
            raise Refused(f"{doc['where']}: {doc['name']} could not be read as a PDF ({exc})") from exc
        opened.append(pdf)
        pages += len(pdf)
        if pages > max_pages:
            what = "images" if engine == "native" else "pages of text"
            raise Refused(
                f"{doc['where']}: the request's PDFs have more pages than the {max_pages} {what} it may carry"
            )
    return opened


def _text(pdf: pdfium.PdfDocument, name: str, budget: list[int]) -> list[dict[str, Any]]:
    """The document's text, page by page, refused as soon as the request's text is over its character limit."""
    pages = []
    for i in range(len(pdf)):
        textpage = pdf[i].get_textpage()
        if textpage.count_chars() > budget[0]:
            raise Refused(f"{name}: the text is longer than the {budget[1]} characters a request may carry")
        page = textpage.get_text_range().strip()
        budget[0] -= len(page)
        pages.append(page)
        textpage.close()
    text = "\n\n".join(pages)
    return [{"type": "text", "text": f'<file name="{name}">\n{text}\n</file>'}]


def _pages(pdf: pdfium.PdfDocument, name: str, max_edge: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": f'<file name="{name}"> as page images:'}]
    for i in range(len(pdf)):
        page = pdf[i]
        longest = max(page.get_width(), page.get_height())
        if longest < 1:  # a crop box outside the media box: nothing to see, nothing to scale
            raise Refused(f"{name}: page {i + 1} has no area to render")
        png = io.BytesIO()
        page.render(scale=min(2.0, max_edge / longest)).to_pil().save(png, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def read(job: dict[str, Any]) -> list[list[dict[str, Any]]]:
    engine, docs = job["engine"], job["docs"]
    opened = _open(docs, job["max_pages"], engine)
    budget = [job["max_chars"], job["max_chars"]]  # [left, limit]
    try:
        if engine == "native":
            return [_pages(pdf, d["name"], job["max_edge"]) for pdf, d in zip(opened, docs, strict=True)]
        return [_text(pdf, d["name"], budget) for pdf, d in zip(opened, docs, strict=True)]
    except pdfium.PdfiumError as exc:
        raise Refused(f"a PDF could not be read ({exc})") from exc


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    # Before any document is opened: past this, pdfium's allocations fail and this process ends, not the gateway.
    resource.setrlimit(resource.RLIMIT_AS, (job["memory_bytes"], job["memory_bytes"]))
    try:
        answer: dict[str, Any] = {"docs": read(job)}
    except Refused as exc:
        answer = {"error": str(exc)}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
