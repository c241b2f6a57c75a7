"""Images for tests, made here (no network)."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_data_url(width: int = 300, height: int = 200, color: tuple[int, int, int] = (200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
