"""A loopback HTTP server with generated images, standing in for the web (this machine has no internet)."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from tests.support.helpers import png
from tests.support.loopback_http import serve_http


def gzip_bomb(expanded_mib: int) -> bytes:
    """`expanded_mib` MiB of zeros, gzipped twice: a few KiB on the wire ("Content-Encoding: gzip, gzip")."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = bytes(1 << 20)
    once = b"".join(stream.compress(block) for _ in range(expanded_mib)) + stream.flush()
    return gzip.compress(once, 9)


BOMB = gzip_bomb(256)
# Request headers the server saw, by path (tests read what the fetcher asked for).
SEEN_HEADERS: dict[str, dict[str, str]] = {}

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

    def _encoded(self, encoding: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        SEEN_HEADERS[self.path] = dict(self.headers.items())
        port = self.headers["Host"].rsplit(":", 1)[1]
        if self.path == "/bomb.png":
            self._encoded("gzip, gzip", BOMB)
            return
        if self.path == "/gzipped.png":
            self._encoded("gzip", gzip.compress(FILES["/photo.png"][1]))
            return
        if self.path == "/identity.png":
            self._encoded("identity", FILES["/photo.png"][1])
            return
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
