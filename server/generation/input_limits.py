"""How much a request asks for. Its input limits, each refused with a 400 that names the field: everything the engine
receives is bounded here (text, images, stop sequences, logit biases, and the structures it compiles: tools, JSON
schemas, grammars). And its prompt's size from the engine payload without tokenizing: an upper bound (to skip the
tokenizer when a request clearly fits), a typical estimate, and what admission holds for it (`demand`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from server.access.admission import Demand
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


# Upper bounds for the cheap pre-check: Tekken tokens are at least one byte; template tokens per message; one
# image at the model's maximum edge (1540 px: 55 rows of 55 tokens plus a break per row).
TEMPLATE_TOKENS_PER_MESSAGE = 8
MAX_IMAGE_TOKENS = 3080
BYTES_PER_TOKEN = 4
# Without max_tokens, a typical answer for the server-wide token bound (at most a quarter of the context).
TYPICAL_OUTPUT_TOKENS = 1024


def _prompt_bytes(payload: dict[str, Any]) -> tuple[int, int]:
    """(UTF-8 bytes of text, including tools and template overhead; number of images) of an engine payload."""
    if "prompt" in payload:
        return _json_len(payload["prompt"]), 0
    total, images = 32 + _json_len(payload.get("tools") or []), 0
    for message in payload["messages"]:
        total += TEMPLATE_TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    total += len(part["text"].encode())
                else:
                    images += 1
        for call in message.get("tool_calls") or []:
            total += _json_len(call)
    return total, images


def _json_len(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:  # e.g. an integer past 64 bits in a tool's JSON schema
        raise InvalidRequest(f"The request cannot be encoded for the engine: {exc}") from exc


def prompt_upper_bound(payload: dict[str, Any]) -> int:
    """Never below the real count: a Tekken token is at least one byte."""
    text, images = _prompt_bytes(payload)
    return text + images * MAX_IMAGE_TOKENS


def prompt_estimate(payload: dict[str, Any]) -> int:
    """A typical count for admission: about four bytes per token, images at their largest."""
    text, images = _prompt_bytes(payload)
    return text // BYTES_PER_TOKEN + images * MAX_IMAGE_TOKENS


def sequences(payload: dict[str, Any]) -> int:
    """How many sequences the engine runs for a payload: one per prompt of a legacy prompt list, times `n`."""
    prompt = payload.get("prompt")
    prompts = len(prompt) if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) else 1
    return prompts * max(payload.get("n") or 1, payload.get("best_of") or 1)


def demand(
    payload: dict[str, Any], context: int, price_prompt: float, price_completion: float, extra_prompt: int = 0
) -> Demand:
    """What admission holds for a payload: typically its estimate with a typical answer; at worst every sequence
    running to `max_tokens`, or to the end of the context when there is none (vLLM's default). `extra_prompt`: tokens
    the payload does not hold yet (documents still to be read)."""
    prompt, runs = prompt_estimate(payload) + extra_prompt, sequences(payload)
    limit = payload.get("max_tokens")
    typical = limit or min(TYPICAL_OUTPUT_TOKENS, context // 4)
    worst = limit or max(1, context - prompt // runs)
    return Demand(
        tokens=prompt + typical * runs,
        worst=prompt + worst * runs,
        cost=prompt * price_prompt + worst * runs * price_completion,
    )


def request_demand(body: dict[str, Any], output_limit: int | None, context: int) -> Demand:
    """`demand` for a client's own body (a request for the hosted upstream, whose prices and context are its own:
    the local context stands in for the worst case)."""
    prompt = _json_len(body.get("messages") or body.get("prompt") or "") // BYTES_PER_TOKEN
    typical = output_limit or min(TYPICAL_OUTPUT_TOKENS, context // 4)
    return Demand(tokens=prompt + typical, worst=prompt + (output_limit or context))
