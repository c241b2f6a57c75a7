"""Anthropic's Messages API as OpenRouter serves it at `/api/v1/messages` (the Anthropic SDK and coding agents
pointed at it), translated to a chat request on the chat path and back.

Blocks: text, image (base64 or URL), tool_use and tool_result (a user turn's tool results become tool messages,
before the turn's own text, as the chat form orders them); documents and server tools are refused with a 400.
Reasoning: `thinking` ({type: enabled, budget_tokens} or disabled) asks a reasoning model (Magistral) for it, and its
reasoning comes back as a thinking block before the answer (signature empty: nothing here signs it). Thinking blocks of
earlier turns are dropped, as a model that reasons anew each turn needs."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from server.dialects.shared_fields import SharedFields
from server.errors import InvalidRequest
from server.schemas.request import ChatRequest, Lenient

# Chat finish reasons as Anthropic's stop reasons.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


class ToolChoice(Lenient):
    type: Literal["auto", "any", "none", "tool"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class TextBlock(Lenient):
    type: Literal["text"]
    text: str


class MessagesRequest(SharedFields):
    max_tokens: int = Field(ge=1, le=2**31)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class CountTokensRequest(Lenient):
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


def chat_messages(req: MessagesRequest | CountTokensRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": _system(req.system)})
    for i, message in enumerate(req.messages):
        role: Literal["user", "assistant"] | None = message.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages[{i}].role: must be user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"messages[{i}].content: must be a string or a list of content blocks")
        (_assistant if role == "assistant" else _user)(messages, content, f"messages[{i}].content")
    return messages


def to_chat(req: MessagesRequest) -> ChatRequest:
    body = req.chat_body(
        chat_messages(req),
        max_tokens=req.max_tokens,
        stop=req.stop_sequences,
        user=(req.metadata or {}).get("user_id"),
    )
    if req.tools:
        body["tools"] = tools(req.tools)
    if req.tool_choice is not None:
        body |= _tool_choice(req.tool_choice)
    if req.thinking is not None:
        body["reasoning"] = _thinking(req.thinking)
    return ChatRequest.model_validate(body)


def _thinking(thinking: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's `thinking` as chat's `reasoning` (`adaptive`: as the model likes)."""
    kind = thinking.get("type")
    if kind == "disabled":
        return {"enabled": False}
    if kind == "adaptive":
        return {"enabled": True}
    budget = thinking.get("budget_tokens")
    if kind != "enabled" or not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise InvalidRequest("thinking: {type: enabled, budget_tokens: a number of tokens}, or {type: disabled}")
    return {"max_tokens": budget}


def _block(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{where}: must be a content block (an object with a type)")
    return block


def _system(system: str | list[dict[str, Any]]) -> str:
    if isinstance(system, str):
        return system
    blocks = [_block(b, f"system[{i}]") for i, b in enumerate(system)]
    return "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def _user(messages: list[dict[str, Any]], blocks: list[dict[str, Any]], where: str) -> None:
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_block(b, f"{where}[{j}]") for j, b in enumerate(blocks)):
        kind = block.get("type")
        if kind == "tool_result":
            content = block.get("content")
            if not isinstance(content, str | list | None):
                raise InvalidRequest(f"{where}[{j}].content: must be a string or a list of content blocks")
            result = content if isinstance(content, str) else [_part(b, f"{where}[{j}].content") for b in content or []]
            messages.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": result or ""})
        else:
            parts.append(_part(block, f"{where}[{j}]"))
    if parts:
        messages.append({"role": "user", "content": parts})


def _assistant(messages: list[dict[str, Any]], blocks: list[dict[str, Any]], where: str) -> None:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_block(b, f"{where}[{j}]") for j, b in enumerate(blocks)):
        kind = block.get("type")
        if kind == "text":
            text.append(TextBlock.model_validate(block).text)
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):
            raise InvalidRequest(f"{where}[{j}].type: {kind!r} is not supported by this server")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    messages.append(message)


def _part(block: Any, where: str) -> dict[str, Any]:
    kind = _block(block, where).get("type")
    if kind == "text":
        return {"type": "text", "text": TextBlock.model_validate(block).text}
    if kind == "image":
        source = _block(block.get("source") or {}, f"{where}.source")
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url":
            url = str(source.get("url"))
        else:
            raise InvalidRequest(f"{where}.source.type: {source.get('type')!r} is not supported by this server")
        return {"type": "image_url", "image_url": {"url": url}}
    raise InvalidRequest(f"{where}.type: {kind!r} is not supported by this server")


def tools(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(given):
        if "input_schema" not in tool:  # server tools (web search, code execution…) have a `type` and no schema
            raise InvalidRequest(f"tools[{i}]: only client tools (with input_schema) are served here")
        function = {"name": tool.get("name"), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    choices: dict[str, dict[str, Any]] = {
        "auto": {"tool_choice": "auto"},
        "any": {"tool_choice": "required"},
        "none": {"tool_choice": "none"},
        "tool": {"tool_choice": {"type": "function", "function": {"name": choice.name}}},
    }
    picked = choices[choice.type]
    if choice.disable_parallel_tool_use:
        picked["parallel_tool_calls"] = False
    return picked


# --- answers -------------------------------------------------------------------------------------------------


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    chat_usage = chat_usage or {}
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": chat_usage.get("prompt_tokens", 0),
        "output_tokens": chat_usage.get("completion_tokens", 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def thinking_block(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": ""}


def tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:  # the model wrote arguments that are not JSON: keep them, as a string
        arguments = {"_raw": function.get("arguments")}
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def message(
    msg_id: str, model: str, content: list[dict[str, Any]], stop: str | None, used: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(stop or "", stop),
        "stop_sequence": None,
        "usage": used,
    }


def from_chat(chat: dict[str, Any]) -> dict[str, Any]:
    choice = chat["choices"][0]
    reply = choice["message"]
    content: list[dict[str, Any]] = []
    if reply.get("reasoning"):
        content.append(thinking_block(reply["reasoning"]))
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    content += [tool_use(call) for call in reply.get("tool_calls") or []]
    return message(chat["id"], chat["model"], content, choice.get("finish_reason"), usage(chat.get("usage")))
