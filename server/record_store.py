"""Generation records in SQLite: metadata of every generation (ids, model, tokens, cost, timings, outcome),
never the prompt or the completion.

Writes never block the event loop or the response: records go into a queue that one writer task drains in
batches on a single database thread. A record is readable (`get`) from the moment it is added. If the disk fails,
records stay queued (up to a bound) and the writer retries, saying so once a minute; nothing is lost while the
process lives. What each key has spent is kept in its own table, so budgets outlive the records' retention. Keys
are known by their immutable id (server/access/auth.py Principal), their label kept beside it for display; a database
from before ids is brought forward once (`_adopt_ids`): the records and spending of each label that is a key now
become that key's, and those of labels no key has any more stay nobody's. The
database is readable by this user only (its key labels and usage are the operator's); one that is not a database
any more is moved aside, and the gateway starts with a new one rather than not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

from server.schemas.record import GenerationRecord
from server.tasks import cancel_and_wait

log = logging.getLogger("mistral_local.records")

FLUSH_INTERVAL_S = 0.5
MAX_PENDING = 100_000
PRUNE_INTERVAL_S = 3600.0
FAILURE_LOG_INTERVAL_S = 60.0
BUSY_TIMEOUT_S = 5.0  # how long a write waits for a lock held by another connection
NO_LABEL = ""  # key_usage's label when keys are off (labels are never empty)
NO_KEY = ""  # key_spending's id when keys are off
SCHEMA_VERSION = 1  # PRAGMA user_version; 1: records and spending by key id


_COLUMNS = [f.name for f in fields(GenerationRecord)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, provider TEXT NOT NULL, api_type TEXT NOT NULL,
    created_at REAL NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, num_images INTEGER NOT NULL, cost REAL NOT NULL, latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER, streamed INTEGER NOT NULL, cancelled INTEGER NOT NULL, finish_reason TEXT,
    native_finish_reason TEXT, key_label TEXT, attempts TEXT NOT NULL DEFAULT '[]', external_user TEXT,
    session_id TEXT, prompt_cache_key TEXT, request_id TEXT, cache_source_id TEXT,
    preset_id TEXT
);
CREATE INDEX IF NOT EXISTS generations_created_at ON generations (created_at);
-- A key's spending in a window (keys whose budget resets, server/access/keys.py).
CREATE INDEX IF NOT EXISTS generations_key_time ON generations (key_label, created_at);
CREATE TABLE IF NOT EXISTS key_usage (label TEXT PRIMARY KEY, tokens INTEGER NOT NULL, cost REAL NOT NULL);
CREATE TABLE IF NOT EXISTS key_spending (key_id TEXT PRIMARY KEY, tokens INTEGER NOT NULL, cost REAL NOT NULL);
"""
# After the columns are added (a database from before key ids has no key_id column until then).
_INDEXES = "CREATE INDEX IF NOT EXISTS generations_key_id_time ON generations (key_id, created_at);"
# Columns added since the first schema, for databases made before them.
_ADDED_COLUMNS = {
    "attempts": "TEXT NOT NULL DEFAULT '[]'",
    "external_user": "TEXT",
    "session_id": "TEXT",
    "prompt_cache_key": "TEXT",
    "request_id": "TEXT",
    "cache_source_id": "TEXT",
    "preset_id": "TEXT",
    "key_id": "TEXT",
}
_ADD_USAGE = """
INSERT INTO key_spending (key_id, tokens, cost) VALUES (?, ?, ?)
ON CONFLICT (key_id) DO UPDATE SET tokens = tokens + excluded.tokens, cost = cost + excluded.cost
"""


class RecordStore:
    def __init__(self, path: Path, retention_days: float, key_ids: dict[str, str] | None = None) -> None:
        """`key_ids`: each key's id by its label, as they stand now (for a database from before key ids)."""
        self.path = path
        self.key_ids = key_ids or {}
        self.retention_s = retention_days * 86400
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[str, GenerationRecord] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Tokens and cost per key id since records began: what budgets are checked against.
        self._totals: dict[str | None, tuple[int, float]] = {}
        # `spent_before`'s answer for each key's current window (they never change; a window only moves on).
        self._before: dict[str | None, tuple[float, float]] = {}
        self._failing_since: float | None = None  # the writer's first failed write of the current run of them
        self._failure_logged = 0.0

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:  # not a database (any more): keep it for a post-mortem, start anew
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "generation records: %s is unreadable (%s); moved to %s, starting a new one", self.path, exc, aside
            )
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").rename(f"{aside}{suffix}")
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # Created (or kept) readable by this user only; SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with contextlib.suppress(PermissionError):  # a file the operator made and owns: theirs to protect
            self.path.chmod(0o600)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            had_usage = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'key_usage'").fetchone() is not None
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(generations)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in columns:
                    conn.execute(f"ALTER TABLE generations ADD COLUMN {name} {kind}")
            if not had_usage:  # a database from before spending was kept apart: start from its records
                with conn:
                    conn.execute(
                        "INSERT INTO key_usage SELECT COALESCE(key_label, ?), SUM(prompt_tokens + completion_tokens), "
                        "SUM(cost) FROM generations GROUP BY key_label",
                        (NO_LABEL,),
                    )
            conn.execute(_INDEXES)
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                self._adopt_ids(conn)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _adopt_ids(self, conn: sqlite3.Connection) -> None:
        """Once, for a database from before key ids: each label a key has now is that key's past."""
        with conn:
            for label, key_id in [*self.key_ids.items(), (NO_LABEL, NO_KEY)]:
                conn.execute("UPDATE generations SET key_id = ? WHERE key_label IS ? AND key_id IS NULL",
                             (key_id or None, label or None))  # fmt: skip
                conn.execute(
                    "INSERT OR IGNORE INTO key_spending SELECT ?, tokens, cost FROM key_usage WHERE label = ?",
                    (key_id, label),
                )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _load_totals(self) -> dict[str | None, tuple[int, float]]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT key_id, tokens, cost FROM key_spending").fetchall()
        return {(key_id or None): (int(tokens), float(cost)) for key_id, tokens, cost in rows}

    async def open(self) -> None:
        await self._run(self._open)
        await self._run(self._prune)
        self._totals = await self._run(self._load_totals)
        self._task = asyncio.create_task(self._writer(), name="records-writer")

    def add(self, record: GenerationRecord) -> None:
        if len(self._pending) >= MAX_PENDING:
            log.error("generation records: %d unwritten, dropping the oldest", len(self._pending))
            self._pending.pop(next(iter(self._pending)))
        self._pending[record.id] = record
        tokens, cost = self._totals.get(record.key_id, (0, 0.0))
        self._totals[record.key_id] = (tokens + record.prompt_tokens + record.completion_tokens, cost + record.cost)
        self._wakeup.set()

    def _insert(self, batch: list[GenerationRecord]) -> None:
        """The records and what they add to each key's spending, in one transaction (a record seen before, from a
        batch retried after a failure, adds nothing)."""
        assert self._conn is not None
        insert = f"INSERT OR IGNORE INTO generations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._conn:
            for r in batch:
                if self._conn.execute(insert, tuple(getattr(r, c) for c in _COLUMNS)).rowcount:
                    tokens = r.prompt_tokens + r.completion_tokens
                    self._conn.execute(_ADD_USAGE, (r.key_id or NO_KEY, tokens, r.cost))

    def _prune(self) -> None:
        assert self._conn is not None
        with self._conn:
            self._conn.execute("DELETE FROM generations WHERE created_at < ?", (time.time() - self.retention_s,))

    async def flush(self) -> None:
        batch = list(self._pending.values())
        if not batch:
            return
        try:
            await self._run(self._insert, batch)
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return
        if self._failing_since is not None:
            log.warning("generation records: writing again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        for record in batch:
            if self._pending.get(record.id) is record:
                del self._pending[record.id]

    def _write_failed(self, exc: sqlite3.Error) -> None:
        """Said at once, then once a minute while it lasts: the writer retries every FLUSH_INTERVAL_S."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._failure_logged = now
        elif now - self._failure_logged < FAILURE_LOG_INTERVAL_S:
            return
        self._failure_logged = now
        log.error("generation records: writes failing (%s); %d record(s) kept to retry", exc, len(self._pending))

    async def _writer(self) -> None:
        last_prune = time.monotonic()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush()
            if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                with contextlib.suppress(sqlite3.Error):
                    await self._run(self._prune)
                last_prune = time.monotonic()
            await asyncio.sleep(FLUSH_INTERVAL_S)
            if self._pending:
                self._wakeup.set()

    def _select(self, generation_id: str) -> GenerationRecord | None:
        assert self._conn is not None
        row = self._conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM generations WHERE id = ?", (generation_id,)
        ).fetchone()
        if row is None:
            return None
        values = dict(zip(_COLUMNS, row, strict=True))
        values["streamed"], values["cancelled"] = bool(values["streamed"]), bool(values["cancelled"])
        return GenerationRecord(**values)

    async def get(self, generation_id: str) -> GenerationRecord | None:
        if (pending := self._pending.get(generation_id)) is not None:
            return pending
        result: GenerationRecord | None = await self._run(self._select, generation_id)
        return result

    async def activity(self, since: float, day: str | None, key_id: str | None) -> list[list[Any]]:
        """Per UTC day, model and provider since `since` (one day, one key's, when given): [day, model, provider,
        requests, prompt tokens, completion tokens, cached tokens, cost], newest day first."""
        await self.flush()
        where, params = ["created_at >= ?"], list[Any]([since])
        for clause, value in (("date(created_at, 'unixepoch') = ?", day), ("key_id IS ?", key_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = (
            "SELECT date(created_at, 'unixepoch') AS day, model, provider, COUNT(*), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cached_tokens), SUM(cost) FROM generations "
            f"WHERE {' AND '.join(where)} GROUP BY day, model, provider ORDER BY day DESC, model"
        )
        conn = self._conn
        assert conn is not None
        rows = await self._run(lambda: conn.execute(sql, params).fetchall())
        return [list(row) for row in rows]

    def spent_by_all(self) -> float:
        """What every key (and keyless use) has spent since records began."""
        return sum(cost for _, cost in self._totals.values())

    async def total_cost(self) -> float:
        """`spent_by_all`, as routes ask for it (a gateway worker asks the control process)."""
        return self.spent_by_all()

    def spent(self, key_id: str | None) -> tuple[int, float]:
        """(tokens, cost) a key has used."""
        return self._totals.get(key_id, (0, 0.0))

    async def usage(self, key_id: str | None) -> tuple[int, float]:
        """`spent`, as routes ask for it: a gateway worker asks the control process, which takes a round trip."""
        return self.spent(key_id)

    async def spent_before(self, key_id: str | None, since: float) -> float:
        """What a key spent before `since` (a budget window's start), in USD: asked once per key and window, in the
        database's thread, off the event loop."""
        known = self._before.get(key_id)
        if known is None or known[0] != since:
            await self.flush()  # what ended before the window began counts before it
            known = self._before[key_id] = since, await self._run(self._select_before, key_id, since)
        return known[1]

    def _select_before(self, key_id: str | None, since: float) -> float:
        """All the key spent (its running total, which outlives pruned records) less what it spent since. The
        writer runs in this thread too: both reads see the same writes."""
        assert self._conn is not None
        total = self._conn.execute("SELECT cost FROM key_spending WHERE key_id = ?", (key_id or NO_KEY,)).fetchone()
        recent = self._conn.execute(
            "SELECT SUM(cost) FROM generations WHERE key_id IS ? AND created_at >= ?", (key_id, since)
        ).fetchone()
        return max(0.0, float(total[0] if total else 0.0) - float(recent[0] or 0.0))

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush()
        if self._conn is not None:
            await self._run(self._conn.close)
        self._db.shutdown(wait=True)
