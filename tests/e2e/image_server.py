"""A loopback HTTP server with generated images, standing in for the web (this machine has no internet)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from PIL import Image

from tests.loopback_http import serve_http


def png(width: int, height: int, color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


FILES: dict[str, tuple[str, bytes]] = {
    "/photo.png": ("image/png", png(300, 200)),
    "/huge.png": ("image/png", png(3000, 2000)),
    "/not-an-image.png": ("image/png", b"<html>hello</html>"),
}


class _Handler(BaseHTTPRequestHandler):
    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _endless(self) -> None:
        """Claims no length and sends until the client stops reading."""
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"\0" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            return

    def do_GET(self) -> None:
        port = self.headers["Host"].rsplit(":", 1)[1]
        redirects = {
            "/redirect-same": "/photo.png",
            "/redirect-localhost": f"http://localhost:{port}/photo.png",  # a name the allowlist lacks
            "/redirect-loop": "/redirect-loop",
        }
        if self.path in redirects:
            self._redirect(redirects[self.path])
            return
        if self.path == "/endless.png":
            self._endless()
            return
        if self.path == "/slow.png":
            time.sleep(3)
        entry = FILES.get("/photo.png" if self.path == "/slow.png" else self.path)
        if entry is None:
            self.send_error(404)
            return
        kind, data = entry
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def serve_images() -> Iterator[str]:
    with serve_http(_Handler) as url:
        yield url
