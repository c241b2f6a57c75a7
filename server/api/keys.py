"""OpenRouter's key management API (`/keys`): create, list, get, update, delete keys, with a management key. Keys
made here live in server/access/keys.py; those of the keys file and the environment are listed too, read-only (they
change where they are configured)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, Field

from server.access.auth import NAME_PATTERN, KeySpec, Principal, hash_key, new_key
from server.access.keys import StoredKey
from server.api.deps import AppParts, KeyDep, PartsDep, require_key
from server.errors import Forbidden, InvalidRequest, NotFound
from server.gateway_state import budget_spent
from server.schemas.request import Strict
from server.schemas.response import ERROR_RESPONSES, DataResponse

router = APIRouter(dependencies=[Depends(require_key)], tags=["keys"], responses=ERROR_RESPONSES)
Reset = Literal["daily", "weekly", "monthly"]


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    limit: float | None = Field(None, ge=0)
    limit_reset: Reset | None = None
    include_byok_in_limit: bool = False
    expires_at: AwareDatetime | None = None
    workspace_id: str | None = None
    creator_user_id: str | None = None


class KeyUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    disabled: bool | None = None
    limit: float | None = Field(None, ge=0)
    limit_reset: Reset | None = None
    include_byok_in_limit: bool | None = None
    expires_at: AwareDatetime | None = None
    workspace_id: str | None = None


def _manager(gateway: AppParts, principal: Principal) -> None:
    if not gateway.keyring.enabled:
        raise Forbidden("Keys are off on this server: configure a management key to make keys through the API")
    if not principal.management:
        raise Forbidden("Only a management key may manage keys")


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


async def _body(gateway: AppParts, key: StoredKey) -> dict[str, Any]:
    _, usage = await gateway.records.usage(key.hash)
    spent = await budget_spent(gateway.records, key.hash, gateway.key_store.spec(key).limits)
    remaining = None if key.limit_usd is None else max(0.0, key.limit_usd - spent)
    return {
        "hash": key.hash,
        "name": key.name,
        "label": key.label,
        "disabled": bool(key.disabled),
        "limit": key.limit_usd,
        "limit_remaining": remaining,
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": bool(key.include_byok_in_limit),
        "usage": usage,
        "usage_daily": usage,
        "usage_weekly": usage,
        "usage_monthly": usage,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "created_at": _iso(key.created_at),
        "updated_at": _iso(key.updated_at),
        "expires_at": _iso(key.expires_at),
        "last_used_at": None,
        "creator_user_id": None,
        "external_user": None,
        "workspace_id": "local",
    }


def _configured(spec: KeySpec) -> StoredKey:
    """A key of the keys file or the environment, shown as the API shows its own."""
    budget = spec.limits.cost_budget
    return StoredKey(spec.sha256, spec.label, spec.label, spec.disabled, budget, None, False, None, 0.0, None)


def _name_free(gateway: AppParts, name: str, but: str | None = None) -> None:
    """A name tells keys apart in logs and metrics: none may equal another's, letter case aside. (Records, budgets
    and caches know a key by its id, so a name a deleted key had gives nothing of that key's.)"""
    names = [s.label for s in gateway.keyring.specs] + [k.name for k in gateway.key_store.all()]
    if any(n.casefold() == name.casefold() and n != but for n in names):
        raise InvalidRequest(f"A key named '{name}' exists (names are compared regardless of case)")


def _found(gateway: AppParts, key_hash: str) -> StoredKey:
    key = gateway.key_store.get(key_hash)
    if key is None:
        configured = any(s.sha256 == key_hash for s in gateway.keyring.specs)
        why = " (a configured key: change it where it is configured)" if configured else ""
        raise NotFound(f"API key {key_hash} not found{why}")
    return key


@router.post("/keys", status_code=201, summary="Make a key (shown once)")
async def create_key(body: KeyCreate, gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    _manager(gateway, principal)
    _name_free(gateway, body.name)
    store = gateway.key_store
    secret = new_key()
    expires = body.expires_at.timestamp() if body.expires_at else None
    key = StoredKey(hash_key(secret), body.name, f"{secret[:9]}...{secret[-3:]}", False, body.limit,
                    body.limit_reset, body.include_byok_in_limit, expires, time.time(), None)  # fmt: skip
    store.add(key)
    return {"data": await _body(gateway, key), "key": secret}


@router.get("/keys", response_model=DataResponse)
async def list_keys(
    gateway: PartsDep,
    principal: KeyDep,
    offset: int = Query(0, ge=0),
    include_disabled: bool = Query(False),
    include_expired: bool = Query(False),
) -> dict[str, Any]:
    _manager(gateway, principal)
    now = time.time()
    keys = [_configured(s) for s in gateway.keyring.specs] + gateway.key_store.all()
    shown = [k for k in keys if (include_disabled or not k.disabled) and (include_expired or not k.expired(now))]
    return {"data": [await _body(gateway, k) for k in shown[offset : offset + 100]]}


@router.get("/keys/{key_hash}", response_model=DataResponse)
async def get_key_by_hash(key_hash: str, gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    _manager(gateway, principal)
    return {"data": await _body(gateway, _found(gateway, key_hash))}


@router.patch("/keys/{key_hash}", response_model=DataResponse)
async def update_key(key_hash: str, body: KeyUpdate, gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    _manager(gateway, principal)
    key = _found(gateway, key_hash)
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] != key.name:
        _name_free(gateway, changes["name"], but=key.name)
    fields = {
        "name": changes.get("name", key.name),
        "disabled": changes.get("disabled", key.disabled),
        "limit_usd": changes.get("limit", key.limit_usd),
        "limit_reset": changes.get("limit_reset", key.limit_reset),
        "include_byok_in_limit": changes.get("include_byok_in_limit", key.include_byok_in_limit),
        "expires_at": _expiry(body) if "expires_at" in changes else key.expires_at,
        "updated_at": time.time(),
    }
    updated = StoredKey(**{**key.__dict__, **fields})
    gateway.key_store.replace(updated)
    return {"data": await _body(gateway, updated)}


def _expiry(body: KeyUpdate) -> float | None:
    return body.expires_at.timestamp() if body.expires_at is not None else None


@router.delete("/keys/{key_hash}")
async def delete_key(key_hash: str, gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    _manager(gateway, principal)
    if not gateway.key_store.delete(_found(gateway, key_hash).hash):
        raise NotFound(f"API key {key_hash} not found")
    return {"deleted": True}
