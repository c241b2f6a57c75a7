"""Input limits and image checks: each refusal is a 400 naming the field."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from server.errors import InvalidRequest
from server.generation.image_fetch import FetchPolicy
from server.generation.images import ImagePolicy, decode_data_url, normalize
from server.generation.input_limits import InputLimits, check_chat
from server.schemas.request import ChatRequest

LIMITS = InputLimits(max_messages=3, max_images=2, max_output_tokens=100, max_string_chars=50)
POLICY = ImagePolicy(
    max_bytes=200_000,
    max_pixels=4_000_000,
    max_edge=1540,
    fetch=FetchPolicy(mode="deny", allowlist=frozenset(), max_bytes=1, timeout_s=1),
)


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, fmt)
    return buf.getvalue()


def refused(body: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequest) as info:
        check_chat(ChatRequest.model_validate(body), LIMITS)
    return info.value.message


def test_message_count_string_length_and_output_limits() -> None:
    user = {"role": "user", "content": "hi"}
    assert refused({"messages": [user] * 4}) == "messages: at most 3 messages per request"
    assert refused({"messages": [{"role": "user", "content": "x" * 51}]}) == (
        "messages[0].content: longer than 50 characters"
    )
    long_part = {"role": "user", "content": [{"type": "text", "text": "y" * 51}]}
    assert refused({"messages": [user, long_part]}) == "messages[1].content[0].text: longer than 50 characters"
    assert refused({"messages": [user], "max_tokens": 101}) == "max_tokens: at most 100 on this server"
    assert refused({"messages": [user], "max_completion_tokens": 101}).startswith("max_completion_tokens")
    assert check_chat(ChatRequest.model_validate({"messages": [user], "max_tokens": 100}), LIMITS) == 0


def test_images_per_request() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"messages": [{"role": "user", "content": [image, image]}]}
    assert check_chat(ChatRequest.model_validate(body), LIMITS) == 2
    body = {"messages": [{"role": "user", "content": [image, image, image]}]}
    assert refused(body) == "messages: at most 2 images per request (this request has 3)"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_accepted_formats(fmt: str) -> None:
    url = normalize(image_bytes(fmt), "f", POLICY)
    assert url.startswith("data:image/")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (64, 48)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_unsupported_formats(fmt: str) -> None:
    with pytest.raises(InvalidRequest, match=f"f: unsupported image format {fmt}"):
        normalize(image_bytes(fmt), "f", POLICY)


def test_decompression_bomb_and_size_limits() -> None:
    # A small file that decodes to 25 M pixels: refused by its header, before decoding.
    bomb = image_bytes("PNG", (5000, 5000))
    assert len(bomb) < 200_000
    with pytest.raises(InvalidRequest, match="more than 4000000 pixels"):
        normalize(bomb, "f", POLICY)
    with pytest.raises(InvalidRequest, match="larger than 200000 bytes"):
        normalize(b"\0" * 200_001, "f", POLICY)
    with pytest.raises(InvalidRequest, match="not a readable image"):
        normalize(b"GIF89a-truncated", "f", POLICY)


def test_downscaled_to_the_maximum_edge() -> None:
    url = normalize(image_bytes("PNG", (3000, 1000)), "f", POLICY)
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (1540, 513)


def test_data_url_forms() -> None:
    assert decode_data_url("data:image/png;base64,AAAA", "f") == b"\0\0\0"
    for bad in ("data:text/plain;base64,AAAA", "data:image/png,AAAA", "data:image/png;base64,@@@"):
        with pytest.raises(InvalidRequest):
            decode_data_url(bad, "f")
