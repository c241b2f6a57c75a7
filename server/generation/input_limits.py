"""A request's input limits, each refused with a 400 that names the field: everything the engine receives is bounded
here (text, images, stop sequences, logit biases, and the structures it compiles: tools, JSON schemas, grammars). Its
size in tokens is server/generation/demand.py's."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from server.errors import InvalidRequest
from server.schemas.request import ChatRequest, CompletionRequest, ImagePart, SamplingFields, TextPart

MAX_STOP_CHARS = 1000


@dataclass(frozen=True)
class InputLimits:
    max_messages: int
    max_images: int
    max_output_tokens: int | None
    max_string_chars: int
    max_stop_sequences: int = 16
    max_logit_bias: int = 1024
    max_tools: int = 128
    # Tools, JSON schemas and grammars together, as JSON: the engine compiles them into a grammar per request.
    max_structure_bytes: int = 256 * 1024


def _check_text(text: str, field: str, limits: InputLimits) -> None:
    if len(text) > limits.max_string_chars:
        raise InvalidRequest(f"{field}: longer than {limits.max_string_chars} characters")


def check_output(req: SamplingFields, limits: InputLimits) -> None:
    limit = req.max_tokens
    if limit is not None and limits.max_output_tokens is not None and limit > limits.max_output_tokens:
        field = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise InvalidRequest(f"{field}: at most {limits.max_output_tokens} on this server")


def _structure_bytes(req: SamplingFields) -> int:
    parts: list[object] = [req.response_format.model_dump(by_alias=True)] if req.response_format else []
    if isinstance(req, ChatRequest) and req.tools:
        parts.append([t.model_dump() for t in req.tools])
    try:
        return len(orjson.dumps(parts))
    except orjson.JSONEncodeError as exc:  # an integer past 64 bits inside a schema
        raise InvalidRequest(f"The request cannot be encoded for the engine: {exc}") from exc


def check_sampling(req: SamplingFields, limits: InputLimits) -> None:
    """What every request sends besides its prompt: output, stop sequences, logit biases, tools and formats."""
    check_output(req, limits)
    stops = [req.stop] if isinstance(req.stop, str) else req.stop or []
    if len(stops) > limits.max_stop_sequences:
        raise InvalidRequest(f"stop: at most {limits.max_stop_sequences} sequences")
    if any(len(s) > MAX_STOP_CHARS for s in stops):
        raise InvalidRequest(f"stop: each sequence at most {MAX_STOP_CHARS} characters")
    if req.logit_bias is not None and len(req.logit_bias) > limits.max_logit_bias:
        raise InvalidRequest(f"logit_bias: at most {limits.max_logit_bias} entries")
    if isinstance(req, ChatRequest) and req.tools is not None and len(req.tools) > limits.max_tools:
        raise InvalidRequest(f"tools: at most {limits.max_tools} tools")
    if _structure_bytes(req) > limits.max_structure_bytes:
        raise InvalidRequest(
            f"tools and response_format: at most {limits.max_structure_bytes} bytes of JSON schema and grammar"
        )


def check_completion(req: CompletionRequest, limits: InputLimits) -> None:
    check_sampling(req, limits)
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            _check_text(prompt, f"prompt[{i}]", limits)
    if sum(len(p) if isinstance(p, str | list) else 1 for p in prompts) > limits.max_string_chars:
        raise InvalidRequest(f"prompt: longer than {limits.max_string_chars} characters or tokens in all")
    if req.echo and not all(isinstance(p, str) for p in prompts):
        # vLLM 0.32 fails the whole request (500) echoing a prompt it was given as token ids: it has no text for it.
        raise InvalidRequest("echo: the prompt must be text (a prompt of token ids cannot be echoed)")


def check_chat(req: ChatRequest, limits: InputLimits) -> int:
    """Refuse what is over the limits; return the number of images."""
    if len(req.messages) > limits.max_messages:
        raise InvalidRequest(f"messages: at most {limits.max_messages} messages per request")
    check_sampling(req, limits)
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
