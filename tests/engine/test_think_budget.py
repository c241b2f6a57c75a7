"""The engine's reasoning budget (server/engine/think_budget.py), step by step on logits as vLLM's sampler hands them
over: after N reasoning tokens only [/THINK] can come; a budget of 0 forbids [THINK]; once reasoning ended, or when
the model never reasons, nothing is touched. End to end, on the real engine:
tests/generation/test_reasoning_on_engine.py."""

from __future__ import annotations

import torch

from server.engine.launcher import THINK_BUDGET_PROCESSOR
from server.engine.think_budget import ThinkBudget, _Budget

START, END = 34, 35


def step(budget: _Budget, output: list[int]) -> torch.Tensor:
    return budget(output, torch.zeros(64))


def test_after_the_budget_only_the_end_of_reasoning_can_come() -> None:
    budget, output = _Budget(START, END, 2), [START]
    assert torch.isfinite(step(budget, output)).all()  # one reasoning token may come
    output.append(7)
    assert torch.isfinite(step(budget, output)).all()  # a second
    output.append(8)
    forced = step(budget, output)
    assert forced[END] == 0 and torch.isinf(forced).sum() == 63  # the budget is spent: [/THINK] only
    output.append(END)
    assert torch.isfinite(step(budget, output)).all()  # the answer is free
    output += [9] * 5
    assert torch.isfinite(step(budget, output)).all()


def test_a_zero_budget_forbids_reasoning_and_an_answer_without_reasoning_is_untouched() -> None:
    none = _Budget(START, END, 0)
    logits = step(none, [])
    assert logits[START] == float("-inf") and torch.isfinite(logits[:START]).all()
    free, output = _Budget(START, END, 3), [5, 6, 7, 8, 9]  # the model answered without reasoning
    assert torch.isfinite(step(free, output)).all()


def test_the_launcher_names_the_processor_where_it_is() -> None:
    module, _, name = THINK_BUDGET_PROCESSOR.partition(":")
    assert module == ThinkBudget.__module__ and name == ThinkBudget.__name__
