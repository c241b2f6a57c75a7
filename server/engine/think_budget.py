"""A reasoning budget for Mistral's reasoning models, run inside the engine (vLLM loads it: `--logits-processors`).

vLLM's own `thinking_token_budget` never fires for a Mistral tokenizer (0.32 and 0.33): it finds the reasoning markers
by encoding the strings "[THINK]" and "[/THINK]", which Tekken encodes as four plain-text tokens each, while the model
writes the special tokens. This processor takes the markers' ids from the tokenizer's special tokens instead. A
request asks for it with `vllm_xargs: {THINK_BUDGET: N}`: after N reasoning tokens the model must write `[/THINK]`;
N = 0 forbids `[THINK]`, so the model answers without reasoning. Imported only in the engine's process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from vllm.tokenizers import cached_tokenizer_from_config
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from server.checkpoint.tokenizer import THINK_TOKENS
from server.engine.launcher import THINK_BUDGET

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig


class _Budget:
    """One request's budget. Each step reads only the tokens written since the last (a 40k-token answer must not
    cost a scan of all its tokens per token)."""

    def __init__(self, start: int, end: int, budget: int) -> None:
        self.start, self.end, self.budget = start, end, budget
        self.began: int | None = None  # where [THINK] was written
        self.read = 0
        self.ended = False

    def __call__(self, output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        new, self.read = output_ids[self.read :], len(output_ids)
        if self.began is None and self.start in new:
            self.began = self.read - len(new) + new.index(self.start)
        if self.ended or (self.began is not None and self.end in new):
            self.ended = True
            return logits
        if self.began is None:
            if self.budget == 0:
                logits[self.start] = float("-inf")
            return logits
        if self.read - self.began - 1 >= self.budget:
            forced = torch.full_like(logits, float("-inf"))
            forced[self.end] = 0.0
            return forced
        return logits


class ThinkBudget(AdapterLogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        super().__init__(vllm_config, device, is_pin_memory)
        vocab = cached_tokenizer_from_config(vllm_config.model_config).get_vocab()
        self.markers = (vocab.get(THINK_TOKENS[0]), vocab.get(THINK_TOKENS[1]))

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params: SamplingParams) -> Callable[..., Any] | None:
        budget = (params.extra_args or {}).get(THINK_BUDGET)
        start, end = self.markers
        if budget is None or start is None or end is None:
            return None
        return _Budget(start, end, int(budget))
