"""The multi-turn workload (`--dataset multi-turn`): many conversations, each growing turn by turn after a system
prompt they all share, as chat users and agents make them. A conversation's turns go one after another (each waits
for the answer before); conversations run side by side up to the concurrency. Each carries its id as `session_id`
(OpenRouter's field), so a gateway can keep it on one engine. The assistant's earlier turns in later prompts are
fixed texts of the output length, not the answers: every target gets exactly the same prompts.

Where the target is this gateway, its `/status` gives each engine's prefix-cache counters (vLLM's own), read before
and after the run: the hit rate over the run, per engine and in all, is what affinity routing buys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from server.bench.client import Outcome, Target, send
from server.bench.load import LoadShape, Run, session_for
from server.bench.workload import Tokenizer, exact_text


@dataclass(frozen=True)
class Dialogue:
    session: str
    system: str
    turns: list[tuple[str, str]]  # each user turn, and the assistant text that follows it in later prompts
    output_len: int

    def bodies(self, model: str, ignore_eos: bool) -> list[dict[str, Any]]:
        messages: list[dict[str, str]] = [{"role": "system", "content": self.system}] if self.system else []
        out = []
        for user, assistant in self.turns:
            messages = [*messages, {"role": "user", "content": user}]
            body = {
                "model": model,
                "messages": messages,
                "max_tokens": self.output_len,
                "stream": True,
                "stream_options": {"include_usage": True},
                "session_id": self.session,
            }
            out.append(body | ({"ignore_eos": True} if ignore_eos else {}))
            messages = [*messages, {"role": "assistant", "content": assistant}]
        return out


def dialogues(
    tok: Tokenizer, *, n: int, turns: int, system_len: int, turn_len: int, output_len: int, seed: int
) -> list[Dialogue]:
    """`n` conversations of `turns` turns: a system prompt of `system_len` tokens shared by all, user turns of
    `turn_len` tokens and assistant turns of `output_len`, from `seed`."""
    rng = np.random.default_rng(seed)
    system = exact_text(tok, rng, system_len) if system_len else ""
    return [
        Dialogue(
            f"bench-{seed}-{i}",
            system,
            [(exact_text(tok, rng, turn_len), exact_text(tok, rng, output_len)) for _ in range(turns)],
            output_len,
        )
        for i in range(n)
    ]


async def run_dialogues(
    target: Target, talks: list[Dialogue], shape: LoadShape, on_done: Callable[[Outcome], None] | None = None
) -> Run:
    """Every conversation, at most `shape.max_concurrency` at once (rate and burstiness do not apply: a turn is sent
    when the one before it is answered)."""
    gate = asyncio.Semaphore(shape.max_concurrency or len(talks) or 1)
    outcomes: list[Outcome] = []
    async with session_for(shape.max_concurrency) as session:

        async def talk(dialogue: Dialogue) -> None:
            async with gate:
                for body in dialogue.bodies(target.model, shape.ignore_eos):
                    outcome = await send(session, target, body)
                    outcomes.append(outcome)
                    if on_done is not None:
                        on_done(outcome)

        start = time.perf_counter()
        await asyncio.gather(*(talk(d) for d in talks))
        return Run(target, shape, outcomes, time.perf_counter() - start)


def _root(base_url: str) -> str:
    for suffix in ("/api/v1", "/v1"):
        if base_url.rstrip("/").endswith(suffix):
            return base_url.rstrip("/")[: -len(suffix)]
    return base_url.rstrip("/")


async def engine_counters(target: Target) -> dict[str, dict[str, float]] | None:
    """Each engine's prefix-cache and request counters, from this gateway's /status; None for another target."""
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.get(f"{_root(target.base_url)}/status", headers=target.headers) as r,
        ):
            engines = (await r.json()).get("engines") if r.status == 200 else None
    except (aiohttp.ClientError, ValueError):
        return None
    if not isinstance(engines, list):
        return None
    keys = ("prefix_cache_queries", "prefix_cache_hits", "requests")
    return {e["name"]: {k: float(e.get(k, 0)) for k in keys} for e in engines}


def cache_figures(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The run's prefix-cache hit rate per engine and in all, and the requests each engine finished."""
    per_engine, hits, queries = [], 0.0, 0.0
    for name, now in after.items():
        then = before.get(name, dict.fromkeys(now, 0.0))
        delta = {k: now[k] - then[k] for k in now}
        hits, queries = hits + delta["prefix_cache_hits"], queries + delta["prefix_cache_queries"]
        rate = delta["prefix_cache_hits"] / delta["prefix_cache_queries"] if delta["prefix_cache_queries"] else 0.0
        per_engine.append({"engine": name, "requests": int(delta["requests"]), "prefix_cache_hit_rate": rate})
    return {"prefix_cache_hit_rate": hits / queries if queries else 0.0, "engines": per_engine}
