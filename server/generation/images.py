"""Images for the engine: the gateway fetches remote URLs itself, checks every image and hands the engine only
`data:` URLs no larger than the model's maximum edge, so the engine never makes an outbound request and never
decodes an oversized image."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import io
import os
import warnings
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

from server.errors import InvalidImage, InvalidRequest
from server.generation.image_fetch import FetchPolicy, fetch_image

ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int
    max_pixels: int
    max_edge: int
    fetch: FetchPolicy
    # Decoding is CPU work in threads: at most one image per core at a time, whatever the number of requests.
    decode_slots: asyncio.Semaphore = dataclasses.field(default_factory=lambda: asyncio.Semaphore(os.cpu_count() or 1))


def decode_data_url(url: str, field: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:image/") or ";base64" not in header:
        raise InvalidImage(f"{field}: a data URL must look like data:image/<format>;base64,<data>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"{field}: the data URL's base64 is invalid") from exc


def normalize(data: bytes, field: str, policy: ImagePolicy) -> str:
    """Check and, if needed, downscale an image; return it as a data URL. CPU-bound: run it in a thread."""
    if len(data) > policy.max_bytes:
        raise InvalidImage(f"{field}: the image is larger than {policy.max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or ""
            if fmt not in ACCEPTED_FORMATS:
                raise InvalidImage(f"{field}: unsupported image format {fmt or 'unknown'}; use PNG, JPEG, WEBP or GIF")
            if image.width * image.height > policy.max_pixels:
                raise InvalidImage(f"{field}: the image has more than {policy.max_pixels} pixels")
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError, OSError) as exc:
        raise InvalidImage(f"{field}: the data is not a readable image ({type(exc).__name__})") from exc
    if max(image.size) <= policy.max_edge and fmt in ("PNG", "JPEG", "WEBP"):
        return f"data:{ACCEPTED_FORMATS[fmt]};base64,{base64.b64encode(data).decode()}"
    image.thumbnail((policy.max_edge, policy.max_edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(out, "PNG")
    return f"data:image/png;base64,{base64.b64encode(out.getvalue()).decode()}"


async def to_data_url(client: httpx.AsyncClient, url: str, field: str, policy: ImagePolicy) -> str:
    if url.startswith("data:"):
        data = decode_data_url(url, field)
    else:
        try:
            data = await fetch_image(client, url, policy.fetch)
        except InvalidRequest as exc:
            raise InvalidImage(f"{field}: {exc.message}") from exc
    async with policy.decode_slots:
        return await asyncio.to_thread(normalize, data, field, policy)
