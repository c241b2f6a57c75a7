"""The generation records' database under failure: corrupt, locked, past retention; and who may read its file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from server import record_store
from server.record_store import RecordStore
from server.schemas.record import GenerationRecord
from tests.support.records import record, written


def test_a_corrupt_database_is_moved_aside_and_the_gateway_starts(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    async def go() -> None:
        store = RecordStore(path, 30)
        await store.open()
        await written(store, record("gen-1"))
        assert await store.get("gen-1") is not None
        await store.close()

    asyncio.run(go())
    (aside,) = tmp_path.glob("g.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM generations").fetchall() == [("gen-1",)]


def test_budgets_outlive_the_records_retention(tmp_path: Path) -> None:
    """Pruning old records used to reset what a key had spent (its budget started over)."""
    path = tmp_path / "g.sqlite3"

    async def go() -> None:
        store = RecordStore(path, 30)
        await store.open()
        old = record("gen-old", tokens=100, cost=2.0)
        await written(store, old.__class__(**{**old.__dict__, "created_at": time.time() - 90 * 86400}))
        await written(store, record("gen-new", tokens=10, cost=0.5), record("gen-anon", label=None, tokens=4))
        await store.close()
        again = RecordStore(path, 30)  # opening prunes the 90-day-old record
        await again.open()
        assert await again.get("gen-old") is None
        assert again.spent("id-alice") == (110, 2.5)
        assert again.spent(None) == (4, 0.5)
        await again.close()

    asyncio.run(go())


def aged(rec: GenerationRecord, seconds: float) -> GenerationRecord:
    return rec.__class__(**{**rec.__dict__, "created_at": time.time() - seconds})


def test_what_a_key_spent_before_its_budget_window_follows_the_window(tmp_path: Path) -> None:
    """A daily budget counts from the window's start: what came before it is subtracted, whenever it was written
    (still queued, even), and a window that moved on is asked anew."""

    async def go() -> None:
        store = RecordStore(tmp_path / "g.sqlite3", 30)
        await store.open()
        await written(store, aged(record("gen-3d", cost=1.0), 3 * 86400), aged(record("gen-1h", cost=0.25), 3600))
        store.add(aged(record("gen-2d", cost=2.0), 2 * 86400))  # not flushed yet: it still counts before today
        today = time.time() - 86400
        assert await store.spent_before("id-alice", today) == pytest.approx(3.0)
        await written(store, record("gen-now", cost=0.5))
        assert await store.spent_before("id-alice", today) == pytest.approx(3.0)  # within the window: unchanged
        assert await store.spent_before("id-alice", time.time() - 60) == pytest.approx(3.25)  # the window moved
        assert await store.spent_before("id-bob", today) == 0.0
        await store.close()

    asyncio.run(go())


def test_a_database_of_the_first_schema_gains_the_new_columns_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    first_schema = (
        "CREATE TABLE generations (id TEXT PRIMARY KEY, model TEXT NOT NULL, provider TEXT NOT NULL, "
        "api_type TEXT NOT NULL, created_at REAL NOT NULL, prompt_tokens INTEGER NOT NULL, "
        "completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, num_images INTEGER NOT NULL, "
        "cost REAL NOT NULL, latency_ms INTEGER NOT NULL, ttft_ms INTEGER, streamed INTEGER NOT NULL, "
        "cancelled INTEGER NOT NULL, finish_reason TEXT, native_finish_reason TEXT, key_label TEXT)"
    )
    with sqlite3.connect(path) as db:
        db.execute(first_schema)
        db.execute("INSERT INTO generations VALUES ('gen-old','m','Local','completions',?,1,2,0,0,0,5,NULL,0,0,"
                   "'stop','stop','alice')", (time.time(),))  # fmt: skip

    async def go() -> None:
        store = RecordStore(path, 30, {"alice": "id-alice"})
        await store.open()
        old = await store.get("gen-old")
        assert old is not None and old.attempts == "[]" and old.session_id is None
        assert old.key_id == "id-alice"  # the key that has the label now had it then
        tagged = record("gen-new").__dict__ | {"session_id": "s-1", "external_user": "u-1", "request_id": "r-1"}
        await written(store, GenerationRecord(**tagged))
        await store.close()
        again = RecordStore(path, 30)
        await again.open()
        new = await again.get("gen-new")
        assert new is not None and (new.session_id, new.external_user, new.request_id) == ("s-1", "u-1", "r-1")
        assert again.spent("id-alice") == (13, 0.5)
        await again.close()

    asyncio.run(go())


def test_a_database_from_before_key_ids_gives_each_key_its_past_once(tmp_path: Path) -> None:
    """Records and spending were by label. Brought forward with the keys as they are: alice's past is her key's;
    dave was deleted, so his stays nobody's, and a key made later under his name gets none of it, not even when the
    gateway restarts knowing that key (the database is brought forward once)."""
    path = tmp_path / "g.sqlite3"
    store = RecordStore(path, 30)

    async def before_ids() -> None:
        await store.open()
        await written(store, record("gen-a", "alice", 10, 1.0), record("gen-d", "dave", 20, 2.0))
        await store.close()

    asyncio.run(before_ids())
    with sqlite3.connect(path) as db:  # as the release before key ids left it
        db.execute("INSERT INTO key_usage VALUES ('alice', 10, 1.0), ('dave', 20, 2.0), ('', 3, 0.0)")
        db.execute("UPDATE generations SET key_id = NULL")
        db.execute("DELETE FROM key_spending")
        db.execute("PRAGMA user_version = 0")

    async def after(
        key_ids: dict[str, str],
    ) -> tuple[dict[str, str | None], dict[str | None, tuple[int, float]]]:
        again = RecordStore(path, 30, key_ids)
        await again.open()
        alice, dave = await again.get("gen-a"), await again.get("gen-d")
        assert alice is not None and dave is not None
        found = ({"alice": alice.key_id, "dave": dave.key_id},
                 {k: again.spent(k) for k in ("id-alice", "id-dave-2", None)})  # fmt: skip
        await again.close()
        return found

    owners, spent = asyncio.run(after({"alice": "id-alice"}))
    assert owners == {"alice": "id-alice", "dave": None}
    assert spent == {"id-alice": (10, 1.0), "id-dave-2": (0, 0.0), None: (3, 0.0)}
    owners, spent = asyncio.run(after({"alice": "id-alice", "dave": "id-dave-2"}))
    assert owners == {"alice": "id-alice", "dave": None}
    assert spent["id-dave-2"] == (0, 0.0)


def test_the_database_is_readable_by_its_user_only(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    path.touch(mode=0o644)

    def modes() -> dict[str, str]:
        return {f.name: oct(f.stat().st_mode & 0o777) for f in tmp_path.glob("g.sqlite3*")}

    async def go() -> dict[str, str]:
        store = RecordStore(path, 30)
        await store.open()
        await written(store, record("gen-1"))
        while_open = await asyncio.to_thread(modes)  # the -wal and -shm files exist while it is open
        await store.close()
        return while_open

    found = asyncio.run(go())
    assert set(found) >= {"g.sqlite3", "g.sqlite3-wal", "g.sqlite3-shm"}
    assert found == {name: "0o600" for name in found}


def test_a_failing_disk_is_reported_once_a_minute_not_twice_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds the database locked, as a full or failing disk refuses writes: the writer keeps
    retrying, says so once, keeps the records, and says when it writes again."""
    monkeypatch.setattr(record_store, "FLUSH_INTERVAL_S", 0.02)
    monkeypatch.setattr(record_store, "BUSY_TIMEOUT_S", 0.01)
    path = tmp_path / "g.sqlite3"

    async def go() -> None:
        store = RecordStore(path, 30)
        await store.open()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        store.add(record("gen-1"))
        await asyncio.sleep(1.0)  # ~40 retries
        assert await store.get("gen-1") is not None  # kept, readable
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.sleep(0.3)
        await store.close()

    with caplog.at_level(logging.WARNING, logger="mistral_local.records"):
        asyncio.run(go())
    failures = [r for r in caplog.records if "writes failing" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    assert any("writing again after" in r.getMessage() for r in caplog.records)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM generations").fetchall() == [("gen-1",)]
