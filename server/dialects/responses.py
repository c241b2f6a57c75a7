"""OpenAI's Responses API as OpenRouter serves it (`POST /responses`): stateless, translated to a chat request that
takes the chat path (admission, limits, images, routing, records), and the chat answer translated back.

Stateless: `store: true`, `previous_response_id`, `conversation` and `background: true` are refused with a 400, as
OpenRouter does; the client sends the whole conversation each time. Only function tools exist here (no hosted
tools: nothing leaves the machine). Reasoning: `reasoning.effort` asks a reasoning model (Magistral) for it, and its
reasoning comes back as a reasoning item (its text as `reasoning_text` content, no summary) before the answer;
reasoning items sent back in `input` are dropped, as a model that reasons anew each turn needs."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import Field

from server.dialects.shared_fields import SharedFields
from server.errors import InvalidRequest
from server.schemas.request import ChatRequest


class ResponsesRequest(SharedFields):
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=2**31)
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    prompt_cache_key: str | None = None
    seed: int | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None


STATEFUL = "This API is stateless: send the whole conversation in `input` (`{}` is not supported)"


def refuse_state(req: ResponsesRequest) -> None:
    for name, stateful in (
        ("store", req.store is True),
        ("previous_response_id", req.previous_response_id is not None),
        ("conversation", req.conversation is not None),
        ("background", req.background is True),
    ):
        if stateful:
            raise InvalidRequest(STATEFUL.format(name))


def to_chat(req: ResponsesRequest) -> ChatRequest:
    """The chat request that asks the same; checked by ChatRequest's own validation."""
    refuse_state(req)
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        messages.append({"role": "user", "content": req.input})
    else:
        for i, item in enumerate(req.input):
            _add_item(messages, item, f"input[{i}]")
    body = req.chat_body(
        messages,
        max_tokens=req.max_output_tokens,
        seed=req.seed,
        parallel_tool_calls=req.parallel_tool_calls,
        metadata=req.metadata,
        user=req.user,
        prompt_cache_key=req.prompt_cache_key,
    )
    if req.tools is not None:
        body["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(req.tools)]
    if req.tool_choice is not None:
        body["tool_choice"] = _tool_choice(req.tool_choice)
    if (fmt := (req.text or {}).get("format")) is not None:
        if not isinstance(fmt, dict):
            raise InvalidRequest("text.format: must be an object with a type")
        body["response_format"] = _format(fmt)
    if req.truncation == "auto":
        body["transforms"] = ["middle-out"]
    if (effort := (req.reasoning or {}).get("effort")) is not None:
        body["reasoning"] = {"effort": effort}
    return ChatRequest.model_validate(body)


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidRequest(f"{where}.role: must be user, system, developer or assistant")
        messages.append({"role": role, "content": _content(item.get("content"), f"{where}.content")})
    elif kind == "function_call":
        call = {"id": item.get("call_id"), "type": "function"}
        call["function"] = {"name": item.get("name"), "arguments": item.get("arguments", "")}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)  # parallel calls: one assistant turn
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        content = output if isinstance(output, str) else _content(output, f"{where}.output")
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": content})
    elif kind != "reasoning":  # earlier reasoning: not sent back to the model
        raise InvalidRequest(f"{where}.type: {kind!r} is not supported by this server")


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: must be a string or a list of content parts")
    return [_part(p, f"{where}[{i}]") for i, p in enumerate(content)]


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text")}
    if kind == "input_image":
        if part.get("image_url") is None:
            raise InvalidRequest(f"{where}: image_url is required (uploaded files are not kept here)")
        image = {"url": part["image_url"]} | ({"detail": part["detail"]} if part.get("detail") else {})
        return {"type": "image_url", "image_url": image}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal")}
    raise InvalidRequest(f"{where}.type: {kind!r} is not supported by this server")


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest(f"{where}.type: only function tools are served here, not {tool.get('type')!r}")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise InvalidRequest(f"tool_choice: {choice.get('type')!r} is not supported by this server")


def _format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") != "json_schema":
        return {"type": fmt.get("type")}
    spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
    return {"type": "json_schema", "json_schema": spec}


# --- answers -------------------------------------------------------------------------------------------------


def item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def response_object(req: ResponsesRequest, gen_id: str, created: int, model: str) -> dict[str, Any]:
    """The response's envelope, echoing the request's settings; `status`, `output` and `usage` filled by the
    caller."""
    return {
        "id": gen_id,
        "object": "response",
        "created_at": created,
        "model": model,
        "status": "in_progress",
        "output": [],
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "frequency_penalty": 0,
        "presence_penalty": 0,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata or {},
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": None,
        "reasoning": req.reasoning,
        "store": False,
        "temperature": req.temperature,
        "text": req.text or {"format": {"type": "text"}},
        "tool_choice": req.tool_choice or "auto",
        "tools": req.tools or [],
        "top_p": req.top_p,
        "truncation": req.truncation or "disabled",
    } | ({"user": req.user} if req.user is not None else {})


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if chat_usage is None:
        return None
    details = chat_usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": chat_usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0, "cache_write_tokens": 0},
        "output_tokens": chat_usage["completion_tokens"],
        "output_tokens_details": {
            "reasoning_tokens": (chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        },
        "total_tokens": chat_usage["total_tokens"],
        "cost": chat_usage.get("cost", 0),
    }


def message_item(text: str, status: str = "completed", msg_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": msg_id or item_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [output_text(text)] if status == "completed" else [],
    }


def reasoning_item(text: str, status: str = "completed", rs_id: str | None = None) -> dict[str, Any]:
    content = [reasoning_text(text)] if status == "completed" else []
    return {"type": "reasoning", "id": rs_id or item_id("rs"), "summary": [], "content": content, "status": status}


def reasoning_text(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    call_id: str, name: str, arguments: str, status: str = "completed", fc_id: str | None = None
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": fc_id or item_id("fc"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def finished(response: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    """The response, completed or (cut at max_output_tokens) incomplete."""
    if finish_reason == "length":
        return response | {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    return response | {"status": "completed", "completed_at": int(time.time())}


def from_chat(req: ResponsesRequest, chat: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed chat completion as the Responses API's response object."""
    choice = chat["choices"][0]
    message = choice["message"]
    output: list[dict[str, Any]] = []
    if message.get("reasoning"):
        output.append(reasoning_item(message["reasoning"]))
    if message.get("content"):
        output.append(message_item(message["content"]))
    for call in message.get("tool_calls") or []:
        output.append(call_item(call["id"], call["function"]["name"], call["function"]["arguments"]))
    response = response_object(req, chat["id"], chat["created"], chat["model"])
    response |= {"output": output, "usage": usage(chat.get("usage"))}
    return finished(response, choice.get("finish_reason"))
