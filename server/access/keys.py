"""Keys made through the API (OpenRouter's `/keys`), kept in SQLite beside the generation records: hashed (the key
itself is shown once, when made), readable by this user only, shared by every gateway worker (each looks a key up
on use, so a key made, changed or deleted on one worker holds on all of them at once), kept across restarts.

A key's `limit` is a cost budget in USD; with `limit_reset` (daily, weekly from Monday, monthly; UTC) it counts only
what the key spent since the current window began (admission asks the generation records).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from server.access.auth import KeyLimits, KeySpec
from server.errors import Unauthorized

Reset = Literal["daily", "weekly", "monthly"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, label TEXT NOT NULL, disabled INTEGER NOT NULL,
    limit_usd REAL, limit_reset TEXT, include_byok_in_limit INTEGER NOT NULL, expires_at REAL,
    created_at REAL NOT NULL, updated_at REAL
)
"""
_COLUMNS = (
    "hash, name, label, disabled, limit_usd, limit_reset, include_byok_in_limit, expires_at, created_at, updated_at"
)


@dataclass(frozen=True)
class StoredKey:
    hash: str
    name: str
    label: str  # how the key is shown: its first and last characters
    disabled: bool
    limit_usd: float | None
    limit_reset: Reset | None
    include_byok_in_limit: bool
    expires_at: float | None
    created_at: float
    updated_at: float | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def window_start(reset: Reset | None, now: datetime) -> datetime | None:
    if reset is None:
        return None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        return day
    if reset == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # One connection for the process (a key is looked up on every request that uses one): SQLite sees the other
        # workers' writes at each new statement.
        self._conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
        self._lock = threading.Lock()
        with self._db() as db:
            db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    def add(self, key: StoredKey) -> None:
        with self._db() as db:
            db.execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", _row(key))

    def get(self, key_hash: str) -> StoredKey | None:
        with self._db() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,)).fetchone()
        return StoredKey(*row) if row is not None else None

    def all(self) -> list[StoredKey]:
        with self._db() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
        return [StoredKey(*row) for row in rows]

    def replace(self, key: StoredKey) -> None:
        with self._db() as db:
            db.execute(f"INSERT OR REPLACE INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", _row(key))

    def delete(self, key_hash: str) -> bool:
        with self._db() as db:
            return db.execute("DELETE FROM api_keys WHERE hash = ?", (key_hash,)).rowcount > 0

    def ids(self) -> dict[str, str]:
        """Each key's id (its hash) by its name."""
        with self._db() as db:
            return dict(db.execute("SELECT name, hash FROM api_keys").fetchall())

    def lookup(self, key_hash: str) -> KeySpec | None:
        """The key ring's question: a key made through the API, as it stands now."""
        key = self.get(key_hash)
        if key is None:
            return None
        if key.expired(time.time()):
            raise Unauthorized("API key has expired")
        return self.spec(key)

    def any(self) -> bool:
        with self._db() as db:
            found = db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone()
        return found is not None

    def spec(self, key: StoredKey) -> KeySpec:
        """The key as the key ring checks it. A budget that resets counts only the current window (admission asks
        the records what the key spent before it began)."""
        start = window_start(key.limit_reset, datetime.now(UTC)) if key.limit_usd is not None else None
        limits = KeyLimits(cost_budget=key.limit_usd, cost_budget_since=start.timestamp() if start else None)
        return KeySpec(label=key.name, sha256=key.hash, limits=limits, disabled=bool(key.disabled))


def _row(key: StoredKey) -> tuple[Any, ...]:
    return (
        key.hash,
        key.name,
        key.label,
        int(key.disabled),
        key.limit_usd,
        key.limit_reset,
        int(key.include_byok_in_limit),
        key.expires_at,
        key.created_at,
        key.updated_at,
    )
