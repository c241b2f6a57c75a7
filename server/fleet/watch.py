"""Each member watched through vLLM's own `/metrics` page, once a second: the page is its load and cache figures, and
its answer is the health check (a router in front of several engines: its /health). A member that stops answering
is out of rotation within about five seconds (a refused connection at once; a hung engine after two probes of two
seconds each), and back on its first answer once its engine is ready again. Its engine's own supervision (restart,
or an attached engine's follower) goes on beside."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import httpx

from server.engine.address import http_base, httpx_client
from server.fleet.load import parse_load

if TYPE_CHECKING:
    from server.fleet.members import Member

log = logging.getLogger("mistral_local.fleet")

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 2.0
MISSES_TO_EJECT = 2


async def watch_members(members: list[Member]) -> None:
    """A fleet of one is only read, never ejected: there is no other engine to send its requests to, and its own
    supervision restarts it (as before fleets)."""
    ejects = len(members) > 1
    await asyncio.gather(*(_watch(m, ejects) for m in members))


async def _watch(member: Member, ejects: bool) -> None:
    misses = 0
    client: httpx.AsyncClient | None = None
    url = ""
    try:
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            engine = member.engine
            if not engine.ready:  # starting or restarting: its own supervision says when it is ready
                misses = 0
                continue
            if client is None or url != engine.url:  # a worker's view learns the address late
                if client is not None:
                    await client.aclose()
                url, client = engine.url, httpx_client(engine.url)
            misses = await _probe(member, client, misses, ejects)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


async def _probe(member: Member, client: httpx.AsyncClient, misses: int, ejects: bool) -> int:
    """One probe; the count of probes missed in a row after it."""
    engine = member.engine
    headers = {"authorization": f"Bearer {engine.api_key}"} if engine.api_key else {}
    path = "/health" if member.router else "/metrics"  # a router's figures are not one engine's
    try:
        answer = await client.get(f"{http_base(engine.url)}{path}", headers=headers, timeout=PROBE_TIMEOUT_S)
    except httpx.ConnectError:
        if ejects:
            member.eject("refuses connections")
        return MISSES_TO_EJECT
    except httpx.HTTPError as exc:
        misses += 1
        if misses >= MISSES_TO_EJECT and ejects:
            member.eject(f"{misses} probes unanswered ({type(exc).__name__})")
        return misses
    try:  # any answer is an answer; only vLLM's page has the figures
        if answer.status_code == 200 and not member.router:
            member.load = parse_load(answer.text)
    except ValueError:
        log.debug("engine %s: /metrics is not Prometheus text", member.name)
    member.readmit()
    return 0
