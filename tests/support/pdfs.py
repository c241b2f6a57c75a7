"""Small valid PDFs for tests, written byte by byte (one page per text, Helvetica), as data URLs."""

from __future__ import annotations

import base64
import zlib


def pdf(*pages: str, box: str = "/MediaBox [0 0 400 200]") -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        page = (
            f"<< /Type /Page /Parent 2 0 R {box} /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        stream = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode()
        objects += [page.encode(), b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _file(objects)


def bomb(pages: int, chars: int) -> bytes:
    """A small PDF whose pages all draw one Flate content stream of `chars` characters: a few KB that ask pdfium
    for pages x chars characters of text (the review's attack on the file-parser)."""
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages))
    shows = b"(" + b"A" * 1000 + b") Tj " if chars >= 1000 else b""
    rest = b"(" + b"A" * (chars % 1000) + b") Tj " if chars % 1000 else b""
    stream = zlib.compress(b"BT /F1 1 Tf 0 0 Td " + shows * (chars // 1000) + rest + b"ET", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    )
    return _file(objects + [page] * pages)


def _file(objects: list[bytes]) -> bytes:
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def data_url(document: bytes) -> str:
    return "data:application/pdf;base64," + base64.b64encode(document).decode()


def pdf_data_url(*pages: str) -> str:
    return data_url(pdf(*pages))


def file_part(*pages: str, name: str = "invoice.pdf") -> dict[str, object]:
    return document_part(pdf(*pages), name)


def document_part(document: bytes, name: str = "invoice.pdf") -> dict[str, object]:
    return {"type": "file", "file": {"filename": name, "file_data": data_url(document)}}
