"""Input limits on a chat request, each refused with a 400 that names the field."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import InvalidRequest
from server.schemas.request import ChatRequest, ImagePart, SamplingFields, TextPart


@dataclass(frozen=True)
class InputLimits:
    max_messages: int
    max_images: int
    max_output_tokens: int | None
    max_string_chars: int


def _check_text(text: str, field: str, limits: InputLimits) -> None:
    if len(text) > limits.max_string_chars:
        raise InvalidRequest(f"{field}: longer than {limits.max_string_chars} characters")


def check_output(req: SamplingFields, limits: InputLimits) -> None:
    limit = req.output_limit
    if limit is not None and limits.max_output_tokens is not None and limit > limits.max_output_tokens:
        field = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise InvalidRequest(f"{field}: at most {limits.max_output_tokens} on this server")


def check_chat(req: ChatRequest, limits: InputLimits) -> int:
    """Refuse what is over the limits; return the number of images."""
    if len(req.messages) > limits.max_messages:
        raise InvalidRequest(f"messages: at most {limits.max_messages} messages per request")
    check_output(req, limits)
    images = 0
    for i, message in enumerate(req.messages):
        content = message.content
        if isinstance(content, str):
            _check_text(content, f"messages[{i}].content", limits)
            continue
        for j, part in enumerate(content or []):
            if isinstance(part, TextPart):
                _check_text(part.text, f"messages[{i}].content[{j}].text", limits)
            elif isinstance(part, ImagePart):
                images += 1
    if images > limits.max_images:
        raise InvalidRequest(f"messages: at most {limits.max_images} images per request (this request has {images})")
    return images
