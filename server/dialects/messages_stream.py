"""The chat path's answer as Anthropic's: the message object, or its event stream (`message_start`,
`content_block_start` / `_delta` / `_stop` per block, `message_delta` with the stop reason and usage,
`message_stop`). A failure after the stream started is Anthropic's `error` event. Keep-alive comments pass as
they are (SSE clients skip them).

Blocks cannot interleave: text that arrives while a tool call's arguments are streaming is held, and sent as a text
block of its own once that call's block is done (a closed block cannot take more arguments). A reasoning model's
reasoning comes first, as a thinking block (`thinking_delta`s, then an empty `signature_delta`, as Anthropic ends
one)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from server import sse
from server.dialects.answer import EventTranslator, translated
from server.dialects.messages import STOP_REASONS, from_chat, message, thinking_block, usage


class MessagesStream(EventTranslator):
    def __init__(self) -> None:
        self.started = False
        self.block: int | None = None  # the open block's index
        self.blocks = 0
        self.kind: str | None = None  # "thinking", "text", or the chat's tool-call index as "tool:N"
        self.held = ""  # text that came while a tool call was open
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    @staticmethod
    def event(kind: str, **fields: Any) -> bytes:
        return sse.named(kind, {"type": kind, **fields})

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """One chunk of the chat stream, as the events it makes."""
        out = b""
        if not self.started:
            self.started = True
            opening = message(chunk["id"], chunk["model"], [], None, usage(None))
            out += self.event("message_start", message=opening)
        if "error" in chunk:
            error = {"type": "api_error", "message": str(chunk["error"].get("message", "The generation failed"))}
            return out + self.flush() + self.close() + self.event("error", error=error)
        if chunk.get("usage") is not None:
            self.usage = usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            out += self.choice(choice)
        return out

    def choice(self, choice: dict[str, Any]) -> bytes:
        delta = choice.get("delta") or {}
        out = b""
        if delta.get("reasoning"):
            if self.kind != "thinking":
                out += self.open("thinking", thinking_block(""))
            out += self.delta({"type": "thinking_delta", "thinking": delta["reasoning"]})
        if delta.get("content"):
            if self.kind is not None and self.kind.startswith("tool:"):
                self.held += delta["content"]
            else:
                out += self.text(delta["content"])
        for call in delta.get("tool_calls") or []:
            kind = f"tool:{call.get('index', 0)}"
            function = call.get("function") or {}
            if self.kind != kind:
                block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": {}}
                out += self.flush() + self.open(kind, block)
            if function.get("arguments"):
                out += self.delta({"type": "input_json_delta", "partial_json": function["arguments"]})
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
        return out

    def text(self, text: str) -> bytes:
        out = b"" if self.kind == "text" else self.open("text", {"type": "text", "text": ""})
        return out + self.delta({"type": "text_delta", "text": text})

    def flush(self) -> bytes:
        """Held text, as a block of its own after the open tool call's."""
        if not self.held:
            return b""
        held, self.held = self.held, ""
        return self.text(held)

    def open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self.close()
        self.block, self.kind = self.blocks, kind
        self.blocks += 1
        return out + self.event("content_block_start", index=self.block, content_block=block)

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self.event("content_block_delta", index=self.block, delta=delta)

    def close(self) -> bytes:
        if self.block is None:
            return b""
        signed = self.delta({"type": "signature_delta", "signature": ""}) if self.kind == "thinking" else b""
        index, self.block, self.kind = self.block, None, None
        return signed + self.event("content_block_stop", index=index)

    def end(self) -> bytes:
        stop = STOP_REASONS.get(self.finish_reason or "", self.finish_reason)
        used = self.usage or usage(None)
        return (
            self.flush()
            + self.close()
            + self.event("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage=used)
            + self.event("message_stop")
        )


def as_messages(answer: Response) -> Response:
    """The chat path's answer (JSON or stream) in Anthropic's shape."""
    return translated(answer, MessagesStream(), from_chat)
