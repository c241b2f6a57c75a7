"""What a request asks of a reasoning model (Magistral), in every dialect's words, as the engine's fields.

OpenRouter chat: `reasoning` {effort, max_tokens, exclude, enabled}, `reasoning_effort`, `include_reasoning`;
Anthropic Messages: `thinking` {type, budget_tokens}; Responses: `reasoning` {effort}. Each becomes one `Ask`: reason
or not, at most how many tokens, and whether the answer shows the reasoning. A model that does not reason ignores all
of them, as OpenRouter does. The budget travels to the engine's logits processor (server/engine/think_budget.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.engine.launcher import THINK_BUDGET
from server.errors import InvalidRequest
from server.schemas.request import Reasoning

# OpenRouter's rule for models that take a token budget: this share of max_tokens, within [1024, 128000].
EFFORT_SHARE = {"max": 0.95, "xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1}
EFFORTS = (*EFFORT_SHARE, "none")
BUDGET_BOUNDS = (1024, 128_000)


@dataclass(frozen=True)
class Ask:
    budget: int | None = None  # reasoning tokens at most; 0: no reasoning; None: as the model likes
    exclude: bool = False  # reason, but leave the reasoning out of the answer

    def engine_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.budget is not None:
            fields["vllm_xargs"] = {THINK_BUDGET: self.budget}
        if self.exclude:
            fields["include_reasoning"] = False
        return fields


def effort_budget(effort: str, max_tokens: int) -> int:
    """OpenRouter's budget for an effort, of the answer's max_tokens (`none`: 0)."""
    if effort == "none":
        return 0
    low, high = BUDGET_BOUNDS
    return max(low, min(high, int(max_tokens * EFFORT_SHARE[effort])))


def check_effort(effort: str | None, field: str) -> str | None:
    if effort is not None and effort not in EFFORTS:
        raise InvalidRequest(f"{field}: one of {', '.join(EFFORTS)}, not {effort!r}")
    return effort


def chat_ask(
    reasoning: Reasoning | None, reasoning_effort: str | None, include_reasoning: bool | None, max_tokens: int
) -> Ask:
    """OpenRouter chat's fields. `reasoning`: the request's object (or None); `max_tokens`: the answer's, which an
    effort takes its share of."""
    effort = check_effort(reasoning.effort if reasoning else None, "reasoning.effort")
    shorthand = check_effort(reasoning_effort, "reasoning_effort")
    if effort and shorthand and effort != shorthand:
        raise InvalidRequest("reasoning_effort and reasoning.effort must not conflict")
    effort = effort or shorthand
    budget_tokens = reasoning.max_tokens if reasoning else None
    if effort and budget_tokens is not None:
        raise InvalidRequest("reasoning: set effort or max_tokens, not both")
    if budget_tokens is not None and budget_tokens < 0:
        raise InvalidRequest("reasoning.max_tokens: a number of tokens, 0 or more")
    exclude = bool(reasoning and reasoning.exclude) or include_reasoning is False
    if reasoning is not None and reasoning.enabled is False:
        return Ask(0, exclude)
    if budget_tokens is not None:
        return Ask(budget_tokens, exclude)
    return Ask(effort_budget(effort, max_tokens) if effort else None, exclude)
