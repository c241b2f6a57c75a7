"""Which engine a request goes to. `affinity` (the default) sends a conversation where its prefix is cached: the
request's route key (the key's id with its first session hint, see `Conversation`) ranks the members by rendezvous
hashing, so every gateway process ranks them alike and only the sessions of an engine that leaves move. A pin keeps
a session on its engine while it comes back within OpenRouter's sticky window (10 minutes); a new session skips an
engine loaded well above the least loaded one. `least-loaded` and `round-robin` exist to measure affinity against.
The ranking's later members are where a request goes when its first choice refuses the connection."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from server.fleet.members import Member

Policy = Literal["affinity", "least-loaded", "round-robin"]

PIN_TTL_S = 600.0  # OpenRouter's sticky routing expires after 10 minutes idle
MAX_PINS = 100_000
SPILL_MARGIN = 4.0  # "well above": busier than the least loaded by this many requests and by half again

# How many leading messages stand for a conversation with no session hint: the system prompt and the first turn,
# which every later request of it repeats.
LEADING_MESSAGES = 2


@dataclass(frozen=True)
class Conversation:
    """What a request says of the conversation it belongs to: the caller's key id (tenants never share a choice,
    nor a prefix: see cache_salt), its session hints in order (`session_id` or x-session-id, `prompt_cache_key`,
    `user`), and `lead`, what every request of the conversation repeats (its leading messages, or the prompt)."""

    key_id: str | None
    hints: dict[str, str | None]
    lead: object

    def route(self) -> str:
        """The route key: the key with its first hint present, else with the lead, as a hash."""
        for name, hint in self.hints.items():
            if hint:
                return _digest(self.key_id, name, hint)
        return _digest(self.key_id, "lead", repr(self.lead)[:65536])


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


def rank(key: str, members: Sequence[Member]) -> list[Member]:
    """Rendezvous (highest random weight) order: each member's score depends only on the key and its name."""
    return sorted(members, key=lambda m: hashlib.sha256(f"{key}\x1f{m.name}".encode()).digest(), reverse=True)


class Router:
    def __init__(self, policy: Policy = "affinity") -> None:
        self.policy = policy
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (member name, last used)
        self._turn = itertools.count()

    def order(self, key: str | None, members: Sequence[Member]) -> list[Member]:
        """The usable members, the one to try first at the front. `key` None (no conversation: tokenizing): the
        least busy first."""
        usable = [m for m in members if m.usable]
        if len(members) == 1 or not usable:  # a fleet of one: nothing to choose
            return usable
        if key is None:
            return sorted(usable, key=lambda m: m.busy)
        if self.policy == "round-robin":
            start = next(self._turn) % len(usable)
            return usable[start:] + usable[:start]
        if self.policy == "least-loaded":
            return sorted(rank(key, usable), key=lambda m: m.busy)
        return self._affine(key, usable)

    def _affine(self, key: str, usable: list[Member]) -> list[Member]:
        ranked = rank(key, usable)
        now = time.monotonic()
        pinned = self._pinned(key, now)
        first = next((m for m in ranked if m.name == pinned), None)
        if first is None:  # a new session (or its engine left): the best-ranked engine not loaded well above the rest
            least = min(m.busy for m in usable)
            first = next(m for m in ranked if m.busy <= least + max(SPILL_MARGIN, least / 2))
        self._pin(key, first.name, now)
        return [first, *(m for m in ranked if m is not first)]

    def _pinned(self, key: str, now: float) -> str | None:
        pin = self._pins.get(key)
        if pin is None or now - pin[1] > PIN_TTL_S:
            return None
        return pin[0]

    def _pin(self, key: str, name: str, now: float) -> None:
        self._pins[key] = (name, now)
        self._pins.move_to_end(key)
        while len(self._pins) > MAX_PINS or now - next(iter(self._pins.values()))[1] > PIN_TTL_S:
            self._pins.popitem(last=False)
