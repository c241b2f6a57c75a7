"""A loopback HTTP server with generated images, standing in for the web (this machine has no internet)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


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
    def do_GET(self) -> None:
        entry = FILES.get(self.path)
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
