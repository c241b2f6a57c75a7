"""Response shapes, for the OpenAPI document. Handlers build these bodies as plain dicts (see shaping/outbound.py);
these models describe them truthfully without costing a validation per response."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: int
    message: str
    metadata: dict[str, Any] | None = None  # OpenRouter chat's `error_type` is here
    error_type: str | None = None  # the Messages API's place for it


class ErrorBody(BaseModel):
    error: ErrorDetail
    error_type: str | None = None  # the Responses API's place for it


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    is_byok: bool
    prompt_tokens_details: dict[str, int]
    cost_details: dict[str, float | None]
    completion_tokens_details: dict[str, int]


class ChatMessageOut(BaseModel):
    role: str
    content: str | None
    refusal: None
    reasoning: None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: str | None
    native_finish_reason: str | None
    logprobs: dict[str, Any] | None


class ChatResponse(BaseModel):
    """Non-streaming body. With `stream: true` the answer is `text/event-stream` of `chat.completion.chunk`
    objects, a final usage chunk with `choices: []`, then `data: [DONE]`."""

    id: str
    provider: str
    model: str
    object: str
    created: int
    choices: list[ChatChoice]
    system_fingerprint: str | None
    usage: Usage


class CompletionChoice(BaseModel):
    text: str
    index: int
    finish_reason: str | None
    native_finish_reason: str | None
    logprobs: dict[str, Any] | None


class CompletionResponse(BaseModel):
    id: str
    provider: str
    model: str
    object: str
    created: int
    choices: list[CompletionChoice]
    system_fingerprint: str | None
    usage: Usage


class DataResponse(BaseModel):
    """`{"data": ...}`, the envelope of OpenRouter's model, endpoint, generation and key records."""

    data: Any


class ModelList(BaseModel):
    data: list[dict[str, Any]]
    total_count: int
    links: dict[str, str | None]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 402, 403, 404, 408, 413, 429, 502, 503)
}
