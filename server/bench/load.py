"""Load shapes as `vllm bench serve` makes them: all at once (rate inf) or Gamma-distributed arrivals
(burstiness 1 = Poisson) rescaled so the last send falls at N/rate, under a client-side concurrency cap."""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import numpy as np

from server.bench.client import Outcome, Target, send
from server.bench.workload import BenchRequest
from server.errors import ConfigError

READY_POLL_S = 1.0


@dataclass(frozen=True)
class LoadShape:
    max_concurrency: int | None = None  # None: no cap
    request_rate: float = math.inf
    burstiness: float = 1.0
    seed: int = 0
    ignore_eos: bool = True


@dataclass
class Run:
    target: Target
    shape: LoadShape
    outcomes: list[Outcome]
    duration: float  # first send to last completion, the denominator of every throughput


def send_offsets(n: int, rate: float, burstiness: float, seed: int) -> list[float]:
    """Seconds after the start at which each request is sent."""
    if math.isinf(rate):
        return [0.0] * n
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    offsets = np.cumsum(gaps)
    offsets *= (n / rate) / offsets[-1]  # vLLM's rescale: the last send at exactly N/rate
    return [0.0, *offsets[:-1].tolist()]


def session_for(concurrency: int | None) -> aiohttp.ClientSession:
    # One session; a connector no smaller than the concurrency (aiohttp's default cap of 100 skews TTFT beyond it).
    connector = aiohttp.TCPConnector(limit=concurrency or 0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=6 * 3600)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


async def wait_ready(target: Target, timeout_s: float) -> None:
    """Until GET /models answers 200 (the target may still be loading)."""
    deadline = time.monotonic() + timeout_s
    url = target.base_url.rstrip("/") + "/models"
    async with session_for(1) as session:
        while True:
            try:
                async with session.get(url, headers=target.headers) as r:
                    if r.status == 200:
                        return
                    why = f"HTTP {r.status}"
            except aiohttp.ClientError as exc:
                why = type(exc).__name__
            if time.monotonic() > deadline:
                raise ConfigError(f"{url} is not ready after {timeout_s:.0f} s ({why})")
            await asyncio.sleep(READY_POLL_S)


async def run_load(
    target: Target,
    requests: list[BenchRequest],
    shape: LoadShape,
    *,
    warmups: int = 0,
    duration_s: float | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> Run:
    """Send the first `warmups` requests one by one, unmeasured; then the rest in `shape`. With `duration_s`, stop
    sending when it has passed (those sent still finish)."""
    everything = [r.body(target.model, shape.ignore_eos) for r in requests]
    warm, bodies = everything[:warmups], everything[warmups:]
    offsets = send_offsets(len(bodies), shape.request_rate, shape.burstiness, shape.seed)
    gate = asyncio.Semaphore(shape.max_concurrency or len(bodies) or 1)
    async with session_for(shape.max_concurrency) as session:
        for body in warm:
            await send(session, target, body)

        async def one(body: dict[str, object], at: float, start: float) -> Outcome | None:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            async with gate:
                if duration_s is not None and time.perf_counter() - start > duration_s:
                    return None  # the run's time is up: not sent
                outcome = await send(session, target, body)
            if on_done is not None:
                on_done(outcome)
            return outcome

        # What lives now (the tokenizer, the prompts) is never scanned by the collector again: a full collection over
        # it pauses the client mid-request, which reads as the target's latency. vllm bench serve does the same.
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        tasks = [asyncio.create_task(one(b, at, start)) for b, at in zip(bodies, offsets, strict=True)]
        outcomes = [o for o in await asyncio.gather(*tasks) if o is not None]
        return Run(target, shape, outcomes, time.perf_counter() - start)
