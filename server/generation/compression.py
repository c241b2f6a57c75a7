"""Middle-out compression (OpenRouter's `middle-out` transform and context-compression plugin).

It follows OpenRouter's description ("removing or truncating messages from the middle of the prompt,
until the prompt fits"); its exact algorithm is unpublished, so this is ours, stated here:
1. Leading system messages and the last turn (the latest user message and what follows it) are always kept.
2. The turns between them (a turn starts at a user message, so tool calls stay with their results) are removed
   in middle-out order: the middle one first, then alternately towards both ends.
3. If that is not enough, the longest remaining text is cut in its middle, keeping its head and tail.
Counts come from the engine's own tokenizer (images and tools at their real token cost). The number of removals
is binary-searched, so a conversation of n turns costs about log2(n) tokenizer calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

EngineMessage = dict[str, Any]
Counter = Callable[[list[EngineMessage]], Awaitable[int]]

ELISION = "\n…\n"
_TRUNCATION_STEPS = 12


def _turns(messages: list[EngineMessage]) -> tuple[list[EngineMessage], list[list[EngineMessage]]]:
    """Leading system messages, then the rest cut into turns that each start at a user message."""
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    turns: list[list[EngineMessage]] = []
    for message in messages[head:]:
        if message["role"] == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return messages[:head], turns


def _middle_out_order(n: int) -> list[int]:
    """Indices 0..n-1 from the middle outwards: for 5 -> [2, 1, 3, 0, 4]."""
    mid = n // 2
    order = [mid]
    for step in range(1, n):
        for i in (mid - step, mid + step):
            if 0 <= i < n and len(order) < n:
                order.append(i)
    return order[:n]


def _without(
    system: list[EngineMessage], middle: list[list[EngineMessage]], last: list[EngineMessage], removed: set[int]
) -> list[EngineMessage]:
    kept = [m for i, turn in enumerate(middle) if i not in removed for m in turn]
    return [*system, *kept, *last]


async def _drop_turns(messages: list[EngineMessage], budget: int, count: Counter) -> list[EngineMessage]:
    system, turns = _turns(messages)
    if len(turns) < 2:
        return messages
    middle, last = turns[:-1], turns[-1]
    order = _middle_out_order(len(middle))
    lo, hi = 1, len(order)  # find the fewest removals that fit
    if await count(_without(system, middle, last, set(order))) > budget:
        return _without(system, middle, last, set(order))
    while lo < hi:
        mid = (lo + hi) // 2
        if await count(_without(system, middle, last, set(order[:mid]))) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return _without(system, middle, last, set(order[:lo]))


def _cut_middle(text: str, keep: float) -> str:
    n = int(len(text) * keep / 2)
    return text[:n] + ELISION + text[len(text) - n :]


def _longest_text(messages: list[EngineMessage]) -> tuple[int, int | None]:
    """(message index, part index or None for string content) of the longest text."""
    best = -1
    where: tuple[int, int | None] = (0, None)
    for i, m in enumerate(messages):
        content = m.get("content")
        if isinstance(content, str) and len(content) > best:
            best, where = len(content), (i, None)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if part.get("type") == "text" and len(part["text"]) > best:
                    best, where = len(part["text"]), (i, j)
    return where


def _with_text(messages: list[EngineMessage], where: tuple[int, int | None], text: str) -> list[EngineMessage]:
    i, j = where
    out = list(messages)
    message = dict(out[i])
    if j is None:
        message["content"] = text
    else:
        parts = list(message["content"])
        parts[j] = {**parts[j], "text": text}
        message["content"] = parts
    out[i] = message
    return out


async def _truncate_longest(messages: list[EngineMessage], budget: int, count: Counter) -> list[EngineMessage]:
    where = _longest_text(messages)
    i, j = where
    content = messages[i].get("content")
    original = content if j is None else content[j]["text"]  # type: ignore[index]
    if not isinstance(original, str) or not original:
        return messages
    lo, hi = 0.0, 1.0  # the largest kept fraction that fits
    for _ in range(_TRUNCATION_STEPS):
        mid = (lo + hi) / 2
        if await count(_with_text(messages, where, _cut_middle(original, mid))) <= budget:
            lo = mid
        else:
            hi = mid
    return _with_text(messages, where, _cut_middle(original, lo))


async def compress(messages: list[EngineMessage], budget: int, count: Counter) -> tuple[list[EngineMessage], int]:
    """`messages` shortened from the middle until `count` of them is at most `budget`, and their count (best
    effort: the caller compares the count with the budget)."""
    tokens = await count(messages)
    if tokens <= budget:
        return messages, tokens
    messages = await _drop_turns(messages, budget, count)
    tokens = await count(messages)
    if tokens <= budget:
        return messages, tokens
    messages = await _truncate_longest(messages, budget, count)
    return messages, await count(messages)
