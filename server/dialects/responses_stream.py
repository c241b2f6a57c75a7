"""The chat path's answer as the Responses API's: the JSON object, or the stream of typed events (`response.created`,
`response.output_item.added`, `response.output_text.delta`, …, `response.completed`).

The chat stream is OpenRouter's (server/generation/stream.py): `data:` chunks, `: OPENROUTER PROCESSING` comments
(kept: SSE clients skip comments), a usage chunk, then `[DONE]`; a failure is a chunk with a top-level `error`,
which becomes `response.failed`. Items are opened as their first delta arrives and closed, in order, when the next
item starts or the stream ends; a reasoning model's reasoning is the first (`response.reasoning_text.delta`). Text
that arrives while function calls are open is held and sent as a message after them (a closed call item cannot take
more arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import Response

from server import sse
from server.dialects.answer import EventTranslator, translated
from server.dialects.responses import (
    ResponsesRequest,
    call_item,
    finished,
    from_chat,
    item_id,
    message_item,
    output_text,
    reasoning_item,
    reasoning_text,
    response_object,
    usage,
)


@dataclass
class OpenItem:
    item: dict[str, Any]  # as in output_item.added (status in_progress)
    index: int  # output_index
    text: str = ""  # a message's text, or a call's arguments so far


class ResponsesStream(EventTranslator):
    def __init__(self, req: ResponsesRequest) -> None:
        self.req = req
        self.response: dict[str, Any] | None = None  # made from the first chunk (its id, model, created)
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # closed items, in output order
        self.reasoning: OpenItem | None = None
        self.message: OpenItem | None = None
        self.calls: dict[int, OpenItem] = {}  # the chat's tool-call index -> its open item
        self.held = ""  # text that came while calls were open
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return sse.named(kind, payload)

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """One chunk of the chat stream, as the events it makes."""
        out = self.start(chunk) if self.response is None else b""
        if "error" in chunk:
            return out + self.failed(chunk["error"])
        if chunk.get("usage") is not None:
            self.usage = usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            out += self.choice(choice)
        return out

    def start(self, chunk: dict[str, Any]) -> bytes:
        self.response = response_object(self.req, chunk["id"], chunk["created"], chunk["model"])
        return self.event("response.created", response=self.response) + self.event(
            "response.in_progress", response=self.response
        )

    def choice(self, choice: dict[str, Any]) -> bytes:
        delta = choice.get("delta") or {}
        out = b""
        if delta.get("reasoning"):
            out += self.think(delta["reasoning"])
        if delta.get("content"):
            out += self.text(delta["content"])
        for call in delta.get("tool_calls") or []:
            out += self.call(call)
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
        return out

    def _open(self, item: dict[str, Any]) -> tuple[OpenItem, bytes]:
        opened = OpenItem(item, len(self.items) + (self.message is not None) + len(self.calls))
        return opened, self.event("response.output_item.added", output_index=opened.index, item=item)

    def _open_with_part(self, item: dict[str, Any], part: dict[str, Any]) -> tuple[OpenItem, bytes]:
        """A text-bearing item (reasoning, message): the item, then its one content part."""
        opened, added = self._open(item)
        where = self._where(opened)
        return opened, added + self.event("response.content_part.added", **where, content_index=0, part=part)

    def _close_with_part(
        self, opened: OpenItem, done: dict[str, Any], part: dict[str, Any], text_done: str, **fields: Any
    ) -> bytes:
        """Its text done (`text_done` with `fields`), its part done, the item done; in that order, as OpenAI's."""
        self.items.append(done)
        where = self._where(opened)
        return (
            self.event(text_done, **where, content_index=0, **fields)
            + self.event("response.content_part.done", **where, content_index=0, part=part)
            + self.event("response.output_item.done", output_index=opened.index, item=done)
        )

    def think(self, delta: str) -> bytes:
        out = b""
        if self.reasoning is None:
            self.reasoning, out = self._open_with_part(reasoning_item("", status="in_progress"), reasoning_text(""))
        self.reasoning.text += delta
        where = self._where(self.reasoning)
        return out + self.event("response.reasoning_text.delta", **where, content_index=0, delta=delta)

    def close_reasoning(self) -> bytes:
        if self.reasoning is None:
            return b""
        r, self.reasoning = self.reasoning, None
        done = reasoning_item(r.text, rs_id=r.item["id"])
        return self._close_with_part(r, done, reasoning_text(r.text), "response.reasoning_text.done", text=r.text)

    def text(self, delta: str) -> bytes:
        out = self.close_reasoning()
        if self.calls:
            self.held += delta
            return out
        if self.message is None:
            self.message, opened = self._open_with_part(message_item("", status="in_progress"), output_text(""))
            out += opened
        self.message.text += delta
        where = self._where(self.message)
        return out + self.event("response.output_text.delta", **where, content_index=0, delta=delta, logprobs=[])

    def call(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        if index not in self.calls:
            out += self.close_reasoning() + self.close_message()
            function = call.get("function") or {}
            item = call_item(call.get("id") or item_id("call"), function.get("name") or "", "", "in_progress")
            self.calls[index], added = self._open(item)
            out += added
        opened = self.calls[index]
        arguments = (call.get("function") or {}).get("arguments") or ""
        if arguments:
            opened.text += arguments
            out += self.event("response.function_call_arguments.delta", **self._where(opened), delta=arguments)
        return out

    @staticmethod
    def _where(opened: OpenItem) -> dict[str, Any]:
        return {"item_id": opened.item["id"], "output_index": opened.index}

    def close_message(self) -> bytes:
        if self.message is None:
            return b""
        m, self.message = self.message, None
        done = message_item(m.text, msg_id=m.item["id"])
        return self._close_with_part(
            m, done, output_text(m.text), "response.output_text.done", text=m.text, logprobs=[]
        )

    def close_calls(self) -> bytes:
        out = b""
        for c in sorted(self.calls.values(), key=lambda c: c.index):
            done = call_item(c.item["call_id"], c.item["name"], c.text, fc_id=c.item["id"])
            self.items.append(done)
            out += self.event(
                "response.function_call_arguments.done", **self._where(c), name=c.item["name"], arguments=c.text
            )
            out += self.event("response.output_item.done", output_index=c.index, item=done)
        self.calls = {}
        return out

    def end(self) -> bytes:
        out = self.close_reasoning() + self.close_message() + self.close_calls()
        if self.held:
            out += self.text(self.held) + self.close_message()
        assert self.response is not None
        final = finished(self.response | {"output": self.items, "usage": self.usage}, self.finish_reason)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return out + self.event(kind, response=final)

    def failed(self, error: dict[str, Any]) -> bytes:
        assert self.response is not None
        message = str(error.get("message", "The generation failed"))
        final = self.response | {
            "status": "failed",
            "output": self.items,
            "error": {"code": "server_error", "message": message},
            "usage": self.usage,
            "error_type": (error.get("metadata") or {}).get("error_type", "server"),
        }
        return self.event("response.failed", response=final)


def as_responses(req: ResponsesRequest, answer: Response) -> Response:
    """The chat path's answer (JSON or stream) in the Responses API's shape."""
    return translated(answer, ResponsesStream(req), lambda chat: from_chat(req, chat))
