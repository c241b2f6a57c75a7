"""A streamed tool call as the client must get it, delta by delta: a call to one of its tools, with its name bare
and its arguments a JSON object from its `{` (server/generation/stream.py shapes the rest of each chunk)."""

from __future__ import annotations

from typing import Any


class StreamedCalls:
    """The calls of one stream, keyed by (choice, call index)."""

    def __init__(self, forced: frozenset[str] = frozenset()) -> None:
        self.forced = forced  # the tools a forced tool_choice allows (outbound.forced_tools)
        self.arguments_begun: set[tuple[int, int]] = set()
        self.dropped: set[tuple[int, int]] = set()  # calls whose name is none of `forced`

    def shaped(self, choice: int, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One chunk's call deltas for a choice, each repaired; those of a dropped call left out."""
        if self.forced:
            self._drop_unknown(choice, calls)
        return [self._repaired(choice, c) for c in calls if (choice, c.get("index", 0)) not in self.dropped]

    def _drop_unknown(self, choice: int, calls: list[dict[str, Any]]) -> None:
        """A forced call names one of the request's tools unless max_tokens cut its name: vLLM's v11 parser then
        streams what was written (`get` for `get_weather`, or `""`) at the end. No call, as unstreamed
        (outbound._cut), rather than a call to a function the client does not have."""
        for call in calls:
            name = (call.get("function") or {}).get("name")
            if isinstance(name, str) and name.strip() not in self.forced:
                self.dropped.add((choice, call.get("index", 0)))

    def _repaired(self, choice: int, call: dict[str, Any]) -> dict[str, Any]:
        """A streamed call as the client must get it: its name bare and its arguments a JSON object from its `{`.
        vLLM 0.32's Mistral parser streams what the grammar lets the model write around them: whitespace before a v11
        tokenizer's name and arguments (Small 3.2; unstreamed, the same call is clean), and for v7 now and then `:{`
        for `{` (about 1 in 6 named-tool streams on the tiny checkpoint). A client's JSON parse, or its lookup of the
        function by name, then fails."""
        function = call.get("function")
        if not isinstance(function, dict):
            return call
        if isinstance(function.get("name"), str):
            function = function | {"name": function["name"].strip()}
        key = (choice, call.get("index", 0))
        if key not in self.arguments_begun and function.get("arguments"):
            arguments = str(function["arguments"])
            brace = arguments.find("{")
            function = function | {"arguments": arguments[brace:] if brace >= 0 else ""}
            if brace >= 0:
                self.arguments_begun.add(key)
        return call | {"function": function}
