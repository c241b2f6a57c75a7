"""A client's OpenRouter request as the engine's payload.

OpenRouter-only fields are consumed here and never reach the engine; parameters the engine cannot honour are
dropped, or refused with a 400 naming them when `provider.require_parameters` is true (OpenRouter's rule).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from server.checkpoint.identity import DEFAULT, Identity
from server.errors import InvalidRequest
from server.generation.reasoning import chat_ask
from server.generation.tool_ids import to_mistral_id
from server.schemas.request import (
    AssistantMessage,
    ChatRequest,
    CompletionRequest,
    Content,
    ImagePart,
    SamplingFields,
    SystemMessage,
    TextPart,
    TokenizeRequest,
    ToolMessage,
    UnsupportedPart,
    UserMessage,
)

ImageResolver = Callable[[str, str], Coroutine[Any, Any, str]]  # (url, field name) -> data URL

# A service tier as vLLM's request priority (lower is served first; the engines run priority scheduling).
TIER_PRIORITY = {"priority": -1, "fast": -1, "ultrafast": -1, "flex": 1}
# Sampling fields the engine takes as they are.
_PASSTHROUGH = (
    "ignore_eos",
    "top_p",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "seed",
    "stop",
    "logit_bias",
)


def unsupported_parameters(req: SamplingFields, reasoning: bool = False) -> list[str]:
    """Request parameters this model cannot honour (OpenRouter ignores such parameters by default). `reasoning`:
    the model reasons (Magistral), so it honours the reasoning fields."""
    names = []
    if req.top_a:
        names.append("top_a")
    if req.response_format is not None and req.response_format.type == "python":
        names.append("response_format")
    if isinstance(req, ChatRequest):
        if req.prediction is not None:
            names.append("prediction")
        if _asks_reasoning(req) and not reasoning:
            names.append("reasoning")
        if req.verbosity is not None:
            names.append("verbosity")
        if req.web_search_options is not None:
            names.append("web_search_options")
        if req.modalities and set(req.modalities) != {"text"}:
            names.append("modalities")
    return names


def _asks_reasoning(req: ChatRequest) -> bool:
    r = req.reasoning
    if r is not None and r.enabled is not False and (r.enabled or r.effort not in (None, "none") or r.max_tokens):
        return True
    return req.reasoning_effort not in (None, "none")


def check_parameters(req: SamplingFields, reasoning: bool = False) -> None:
    names = unsupported_parameters(req, reasoning)
    if names and req.provider is not None and req.provider.require_parameters:
        raise InvalidRequest(
            f"No endpoints found that support all the requested parameters: {', '.join(names)} "
            "(provider.require_parameters is true)",
            metadata={"unsupported_parameters": names},
        )


def sampling(req: SamplingFields, card: Identity) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k in _PASSTHROUGH if (v := getattr(req, k)) is not None}
    # OpenRouter leaves absent parameters to the provider's default; ours is the model card's sampling.
    out["temperature"] = req.temperature if req.temperature is not None else card.temperature
    if req.top_p is None and card.top_p is not None:
        out["top_p"] = card.top_p
    if req.top_k:  # OpenRouter's 0 means disabled, which is the engine's default
        out["top_k"] = req.top_k
    if req.max_tokens is not None:
        out["max_tokens"] = req.max_tokens
    fmt = req.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        out["response_format"] = fmt.model_dump(by_alias=True, exclude_none=True)
    elif fmt is not None and fmt.type == "grammar":
        if not fmt.grammar:
            raise InvalidRequest("response_format.grammar: a grammar string is required")
        out["structured_outputs"] = {"grammar": fmt.grammar}
    if req.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # OpenRouter always reports usage
    return out


def _text_of(content: Content | None, field: str) -> str:
    """Text-only content (system and tool messages) as one string."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise InvalidRequest(f"{field}[{j}]: only text parts are allowed in this message")
        texts.append(part.text)
    return "".join(texts)


# An image part waiting for its data URL: (the URL sent, the field to name in errors, the engine part to fill in).
ImageJob = tuple[str, str, dict[str, Any]]


def _parts(content: Content, field: str, name: str | None, jobs: list[ImageJob]) -> str | list[Any]:
    prefix = f"{name}: " if name else ""  # OpenRouter's rendering of `name` for non-OpenAI models
    if isinstance(content, str):
        return prefix + content
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{field}[{j}]"
        if isinstance(part, UnsupportedPart):
            raise InvalidRequest(f"{where}: '{part.type}' parts are not supported: this model takes text and images")
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            engine_part: dict[str, Any] = {"type": "image_url", "image_url": {"url": None}}
            jobs.append((part.image_url.url, f"{where}.image_url.url", engine_part))
            out.append(engine_part)
    if prefix:
        first_text = next((p for p in out if p["type"] == "text"), None)
        if first_text is None:
            out.insert(0, {"type": "text", "text": prefix})
        else:
            first_text["text"] = prefix + first_text["text"]
    return out


def _message(msg: Any, i: int, jobs: list[ImageJob]) -> dict[str, Any]:
    field = f"messages[{i}].content"
    if isinstance(msg, SystemMessage):  # Mistral has no developer role: it is a system prompt
        return {"role": "system", "content": _text_of(msg.content, field)}
    if isinstance(msg, UserMessage):
        return {"role": "user", "content": _parts(msg.content, field, msg.name, jobs)}
    if isinstance(msg, ToolMessage):
        return {
            "role": "tool",
            "tool_call_id": to_mistral_id(msg.tool_call_id),
            "content": _text_of(msg.content, field),
        }
    assert isinstance(msg, AssistantMessage)
    out: dict[str, Any] = {"role": "assistant", "content": _text_of(msg.content, field) or None}
    if msg.name and out["content"]:
        out["content"] = f"{msg.name}: {out['content']}"
    if msg.tool_calls:
        out["tool_calls"] = [
            {
                "id": to_mistral_id(c.id),
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"},
            }
            for c in msg.tool_calls
        ]
    return out


async def resolve_images(jobs: list[ImageJob], resolve: ImageResolver) -> None:
    """Fetch and check every image concurrently, only once the whole request has validated and been admitted; the
    first failure cancels the others."""
    if not jobs:
        return
    try:
        async with asyncio.TaskGroup() as group:
            tasks: list[asyncio.Task[str]] = [group.create_task(resolve(url, field)) for url, field, _ in jobs]
    except* InvalidRequest as failures:
        raise failures.exceptions[0] from None
    for (_, _, part), task in zip(jobs, tasks, strict=True):
        part["image_url"]["url"] = task.result()


def chat_payload(req: ChatRequest, served_model: str, card: Identity) -> tuple[dict[str, Any], list[ImageJob]]:
    """The engine's payload, and its images still to fetch and check (`resolve_images` fills them in). `card`: the
    served model's (its sampling defaults; whether it reasons)."""
    check_parameters(req, card.reasoning)
    jobs: list[ImageJob] = []
    messages = [_message(m, i, jobs) for i, m in enumerate(req.messages)]
    payload: dict[str, Any] = {"model": served_model, "messages": messages, **sampling(req, card)}
    if card.reasoning:
        answer = req.max_tokens or card.max_output or card.context
        ask = chat_ask(req.reasoning, req.reasoning_effort, req.include_reasoning, answer)
        payload |= ask.engine_fields()
        if card.system_prompt and ask.budget != 0 and messages[0]["role"] != "system":
            # The card asks for its repository's system prompt (it has the model reason in [THINK]; Mistral's own
            # API applies one to reasoning models, `prompt_mode: reasoning`), unless the request brings its own or
            # asks for no reasoning.
            messages.insert(0, {"role": "system", "content": card.system_prompt})
    last = messages[-1]
    if last["role"] == "assistant" and not last.get("tool_calls"):
        # A trailing assistant message is a prefill: the model continues it.
        payload |= {"continue_final_message": True, "add_generation_prompt": False}
    if req.tools:
        payload["tools"] = [t.model_dump(exclude_none=True) for t in req.tools]
    if req.tool_choice is not None:
        choice = req.tool_choice
        payload["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump(exclude_none=True)
    if req.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = req.parallel_tool_calls
    if req.service_tier in TIER_PRIORITY:
        payload["priority"] = TIER_PRIORITY[req.service_tier]
    if req.logprobs:
        payload["logprobs"] = True
        if req.top_logprobs is not None:
            payload["top_logprobs"] = req.top_logprobs
    return payload, jobs


def completion_payload(req: CompletionRequest, served_model: str, card: Identity) -> dict[str, Any]:
    check_parameters(req)
    payload = {"model": served_model, "prompt": req.prompt, **sampling(req, card)}
    for key in ("logprobs", "echo", "suffix"):
        if (value := getattr(req, key)) is not None:
            payload[key] = value
    return payload


def tokenize_payload(req: TokenizeRequest, served_model: str) -> tuple[dict[str, Any], list[ImageJob]]:
    """The engine's /tokenize body, built from checked fields only (the engine would fetch image URLs itself)."""
    if (req.prompt is None) == (req.messages is None):
        raise InvalidRequest("tokenize: send either prompt or messages")
    payload: dict[str, Any] = {"model": served_model}
    jobs: list[ImageJob] = []
    if req.prompt is not None:
        payload["prompt"] = req.prompt
    else:
        chat, jobs = chat_payload(ChatRequest(messages=req.messages or [], tools=req.tools), served_model, DEFAULT)
        keys = ("tools", "add_generation_prompt", "continue_final_message")
        payload |= {k: chat[k] for k in keys if k in chat}
        # vLLM 0.32's /tokenize answers 400 ("tool_calls must be a list") for an assistant message with tool calls
        # and a null content; its chat route takes both. Without the null, the same tokens.
        payload["messages"] = [
            {k: v for k, v in m.items() if v is not None or k != "content"} for m in chat["messages"]
        ]
    flags = ("add_generation_prompt", "continue_final_message", "add_special_tokens", "return_token_strs")
    return payload | {k: v for k in flags if (v := getattr(req, k)) is not None}, jobs
