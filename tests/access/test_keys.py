"""Key management as OpenRouter's `/keys`, through the official Python SDK and raw HTTP, on a gateway without an
engine: a key made works at once and after a restart, is hashed on disk, can be listed, read, disabled, limited,
given an expiry and deleted, only by a management key; a budget with a reset counts the current window only."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter, errors

from server.access.auth import KeyLimits, hash_key, new_key
from server.access.keys import KeyStore, StoredKey, window_start
from server.gateway_state import budget_spent
from server.record_store import RecordStore
from tests.support.helpers import bearer
from tests.support.records import record
from tests.support.served_app import gateway_settings, served_app

OPS, USER = new_key(), new_key()
SPECS = [
    {"label": "ops", "sha256": hash_key(OPS), "management": True},
    {"label": "user", "sha256": hash_key(USER)},
]


def settings(cache_dir: Path) -> Any:
    return gateway_settings(api_keys=json.loads(json.dumps(SPECS)), cache_dir=cache_dir)


def whoami(url: str, key: str) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/key", headers={"Authorization": f"Bearer {key}"})


def test_a_key_made_through_the_sdk_works_at_once_and_after_a_restart(tmp_path: Path) -> None:
    with served_app(settings(tmp_path)) as url:
        sdk = OpenRouter(api_key=OPS, server_url=f"{url}/api/v1", retry_config=None)
        made = sdk.api_keys.create(name="team-a", limit=5.0)
        assert made.key.startswith("sk-ml-") and made.data.name == "team-a" and made.data.limit == 5.0
        assert whoami(url, made.key).json()["data"]["label"] == "team-a"
        assert whoami(url, made.key).json()["data"]["limit"] == 5.0
    # On disk: its hash, never the key.
    assert made.key.encode() not in (tmp_path / "keys.sqlite3").read_bytes()
    with sqlite3.connect(tmp_path / "keys.sqlite3") as db:
        assert db.execute("SELECT hash FROM api_keys").fetchall() == [(hash_key(made.key),)]
    with served_app(settings(tmp_path)) as url:
        assert whoami(url, made.key).status_code == 200


def test_list_get_update_delete(tmp_path: Path) -> None:
    with served_app(settings(tmp_path)) as url:
        sdk = OpenRouter(api_key=OPS, server_url=f"{url}/api/v1", retry_config=None)
        made = sdk.api_keys.create(name="team-b")
        key_hash = made.data.hash
        names = [k.name for k in sdk.api_keys.list().data]
        assert names == ["ops", "user", "team-b"]  # the configured keys too
        assert sdk.api_keys.get(hash=key_hash).data.name == "team-b"
        updated = sdk.api_keys.update(hash=key_hash, disabled=True, limit=2.0, limit_reset="daily")
        assert updated.data.disabled and updated.data.limit == 2.0 and updated.data.limit_reset == "daily"
        assert whoami(url, made.key).status_code == 403  # disabled: at once
        assert "team-b" not in [k.name for k in sdk.api_keys.list().data]
        assert "team-b" in [k.name for k in sdk.api_keys.list(include_disabled=True).data]
        assert sdk.api_keys.delete(hash=key_hash).DELETED is True
        assert whoami(url, made.key).status_code == 401
        with pytest.raises(errors.NotFoundResponseError):
            sdk.api_keys.get(hash=key_hash)


def test_an_expired_key_is_refused(tmp_path: Path) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with served_app(settings(tmp_path)) as url:
        made = httpx.post(
            f"{url}/api/v1/keys", headers={"Authorization": f"Bearer {OPS}"}, json={"name": "gone", "expires_at": past}
        ).json()
        refused = whoami(url, made["key"])
        assert refused.status_code == 401 and refused.json()["error"]["message"] == "API key has expired"


def test_only_a_management_key_manages_keys(tmp_path: Path) -> None:
    with served_app(settings(tmp_path)) as url:
        as_user = httpx.post(f"{url}/api/v1/keys", headers={"Authorization": f"Bearer {USER}"}, json={"name": "x"})
        assert as_user.status_code == 403
        ops = {"Authorization": f"Bearer {OPS}"}
        assert httpx.post(f"{url}/api/v1/keys", headers=ops, json={"name": "user"}).status_code == 400  # taken
        assert httpx.patch(f"{url}/api/v1/keys/{hash_key(USER)}", headers=ops, json={}).status_code == 404
    with served_app(gateway_settings(cache_dir=tmp_path / "open")) as url:  # no keys at all: nothing to manage
        assert httpx.post(f"{url}/api/v1/keys", json={"name": "x"}).status_code == 403


def test_a_budget_that_resets_counts_the_current_window(tmp_path: Path) -> None:
    records = tmp_path / "generations.sqlite3"
    since = window_start("daily", datetime.now(UTC))
    assert since is not None

    async def spend() -> None:
        store = RecordStore(records, 30)
        await store.open()
        old = record("gen-old", label="daily", cost=2.0, key_id=hash_key("k"))
        store.add(stored_at(old, time.time() - 2 * 86400))
        store.add(record("gen-new", label="daily", cost=0.5, key_id=hash_key("k")))
        store.add(record("gen-other", label="weekly", cost=7.0))  # another key's spending counts for nothing here
        # 2.5 spent in all, 0.5 of it today: against a daily budget only the 0.5 counts.
        assert await store.spent_before(hash_key("k"), since.timestamp()) == pytest.approx(2.0)
        window = KeyLimits(cost_budget=1.0, cost_budget_since=since.timestamp())
        assert await budget_spent(store, hash_key("k"), window) == pytest.approx(0.5)
        assert await budget_spent(store, hash_key("k"), KeyLimits(cost_budget=1.0)) == pytest.approx(2.5)
        store.add(record("gen-later", label="daily", cost=0.25, key_id=hash_key("k")))  # the answer is kept
        assert await budget_spent(store, hash_key("k"), window) == pytest.approx(0.75)
        await store.close()

    asyncio.run(spend())
    keys = KeyStore(tmp_path / "keys.sqlite3")
    key = StoredKey(hash_key("k"), "daily", "sk-…", False, 1.0, "daily", False, None, time.time(), None)
    limits = keys.spec(key).limits
    assert limits.cost_budget == 1.0 and limits.cost_budget_since == since.timestamp()
    assert keys.spec(StoredKey(**{**key.__dict__, "limit_reset": None})).limits.cost_budget_since is None


def stored_at(r: Any, created_at: float) -> Any:
    return r.__class__(**{**r.__dict__, "created_at": created_at})


def test_the_sdk_parses_every_key_answer(tmp_path: Path) -> None:
    with served_app(settings(tmp_path)) as url, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fields the SDK marks deprecated yet requires
        sdk = OpenRouter(api_key=OPS, server_url=f"{url}/api/v1", retry_config=None)
        made = sdk.api_keys.create(name="parsed", limit=1.0, limit_reset="monthly")
        assert sdk.api_keys.get_current_key_metadata().data.is_management_key is True
        assert sdk.api_keys.get(hash=made.data.hash).data.limit_reset == "monthly"


def test_databases_of_the_release_before_key_ids_keep_every_keys_past(tmp_path: Path) -> None:
    """Keys and records as the release before key ids left them (records and spending by label): after the upgrade,
    the configured key and the one made through /keys each still own their records and spending, and their budgets
    go on from there."""
    team = new_key()
    KeyStore(tmp_path / "keys.sqlite3").add(
        StoredKey(hash_key(team), "team-c", "sk-…", False, 2.0, None, False, None, time.time(), None)
    )

    async def before_ids() -> None:
        store = RecordStore(tmp_path / "generations.sqlite3", 30)
        await store.open()
        store.add(record("gen-team", label="team-c", tokens=30, cost=1.5))
        store.add(record("gen-user", label="user", tokens=12, cost=0.25))
        await store.close()

    asyncio.run(before_ids())
    with sqlite3.connect(tmp_path / "generations.sqlite3") as db:
        db.execute("UPDATE generations SET key_id = NULL")
        db.execute("DELETE FROM key_spending")
        db.execute("INSERT INTO key_usage VALUES ('team-c', 30, 1.5), ('user', 12, 0.25)")
        db.execute("PRAGMA user_version = 0")
    with served_app(settings(tmp_path)) as url:
        mine = whoami(url, team).json()["data"]
        assert (mine["usage"], mine["limit_remaining"]) == (1.5, 0.5)
        assert whoami(url, USER).json()["data"]["usage"] == 0.25
        own = httpx.get(f"{url}/api/v1/generation", params={"id": "gen-team"}, headers=bearer(team))
        assert own.status_code == 200
        other = httpx.get(f"{url}/api/v1/generation", params={"id": "gen-team"}, headers=bearer(USER))
        assert other.status_code == 404
