"""The multi-turn workload: conversations that grow turn by turn after one shared system prompt, each under its own
session id, the same prompts on every run with the seed; and the run's prefix-cache figures from the engines'
counters."""

from __future__ import annotations

import itertools

import pytest

from server.bench.dialogues import cache_figures, dialogues
from server.bench.workload import Tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return Tokenizer.default(tmp_path_factory.mktemp("tok"))


def test_conversations_grow_turn_by_turn_after_a_shared_system_prompt(tok: Tokenizer) -> None:
    talks = dialogues(tok, n=3, turns=4, system_len=50, turn_len=20, output_len=8, seed=5)
    assert len({t.session for t in talks}) == 3 and len({t.system for t in talks}) == 1
    assert len(tok.encode(talks[0].system)) == 50
    bodies = talks[0].bodies("m", ignore_eos=True)
    assert len(bodies) == 4 and all(b["session_id"] == talks[0].session and b["ignore_eos"] for b in bodies)
    for before, after in itertools.pairwise(bodies):
        # Each prompt is the one before, its answer and a new user turn: what a prefix cache can reuse.
        assert after["messages"][: len(before["messages"])] == before["messages"]
        assert [m["role"] for m in after["messages"][len(before["messages"]) :]] == ["assistant", "user"]
    user, assistant = talks[0].turns[0]
    assert len(tok.encode(user)) == 20 and len(tok.encode(assistant)) == 8 and bodies[0]["max_tokens"] == 8
    assert talks == dialogues(tok, n=3, turns=4, system_len=50, turn_len=20, output_len=8, seed=5)
    assert "ignore_eos" not in talks[0].bodies("m", ignore_eos=False)[0]


def test_the_runs_prefix_cache_figures() -> None:
    before = {
        "a": {"prefix_cache_queries": 1000.0, "prefix_cache_hits": 500.0, "requests": 10.0},
        "b": {"prefix_cache_queries": 0.0, "prefix_cache_hits": 0.0, "requests": 0.0},
    }
    after = {
        "a": {"prefix_cache_queries": 2000.0, "prefix_cache_hits": 1300.0, "requests": 20.0},
        "b": {"prefix_cache_queries": 1000.0, "prefix_cache_hits": 200.0, "requests": 10.0},
        "c": {"prefix_cache_queries": 0.0, "prefix_cache_hits": 0.0, "requests": 0.0},  # joined, unused
    }
    figures = cache_figures(before, after)
    assert figures["prefix_cache_hit_rate"] == pytest.approx(1000 / 2000)  # the run's, not since each engine started
    assert figures["engines"] == [
        {"engine": "a", "requests": 10, "prefix_cache_hit_rate": pytest.approx(0.8)},
        {"engine": "b", "requests": 10, "prefix_cache_hit_rate": pytest.approx(0.2)},
        {"engine": "c", "requests": 0, "prefix_cache_hit_rate": 0.0},
    ]
