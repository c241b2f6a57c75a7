"""GET /credits and /activity, as OpenRouter's management API answers them, from the generation records. Both show
every key's spending: a management key may read them (or anyone, when no keys are configured)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query

from server.access.auth import Principal
from server.api.deps import AppParts, KeyDep, PartsDep, require_key
from server.errors import Forbidden, InvalidRequest, NotFound
from server.schemas.response import ERROR_RESPONSES, DataResponse

router = APIRouter(dependencies=[Depends(require_key)], tags=["account"], responses=ERROR_RESPONSES)
ACTIVITY_DAYS = 30  # OpenRouter reports the last 30 days


def _management(principal: Principal) -> None:
    if not principal.operator:
        raise Forbidden("Only a management key may read the account's usage")


@router.get("/credits", response_model=DataResponse)
async def credits(gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    """Credits are the cost budgets the operator gave the keys; usage, what every generation cost."""
    _management(principal)
    granted = sum(spec.limits.cost_budget or 0.0 for spec in gateway.keyring.specs)
    return {"data": {"total_credits": granted, "total_usage": await gateway.records.total_cost()}}


def _day(given: str | None) -> str | None:
    if given is None:
        return None
    try:
        day = date.fromisoformat(given)
    except ValueError as exc:
        raise InvalidRequest("date: must be YYYY-MM-DD") from exc
    today = datetime.now(UTC).date()
    if not today - timedelta(days=ACTIVITY_DAYS) <= day <= today:
        raise InvalidRequest(f"date: must be within the last {ACTIVITY_DAYS} days")
    return day.isoformat()


def _key_id(gateway: AppParts, key_hash: str | None) -> str | None:
    """A key's id is its hash: a configured key's, or one made through /keys."""
    if key_hash is None:
        return None
    key_hash = key_hash.lower()
    if any(spec.sha256 == key_hash for spec in gateway.keyring.specs) or gateway.key_store.get(key_hash):
        return key_hash
    raise NotFound(f"No API key with hash {key_hash}")


@router.get("/activity", response_model=DataResponse)
async def activity(
    gateway: PartsDep,
    principal: KeyDep,
    day: str | None = Query(None, alias="date", description="one UTC day in the last 30 (YYYY-MM-DD)"),
    api_key_hash: str | None = Query(
        None, description="one key's activity (its SHA-256, as /keys and the keys file give it)"
    ),
) -> dict[str, Any]:
    """Generations per UTC day, model and provider over the last 30 days."""
    _management(principal)
    since = time.time() - ACTIVITY_DAYS * 86400
    rows = await gateway.records.activity(since, _day(day), _key_id(gateway, api_key_hash))
    settings = gateway.settings
    return {"data": [_item(row, settings.model_id, settings.canonical_slug) for row in rows]}


def _item(row: list[Any], model_id: str, slug: str) -> dict[str, Any]:
    day, model, provider, requests, prompt, completion, cached, cost = row
    return {
        "date": day,
        "model": model,
        "model_permaslug": slug if model == model_id else model,
        "endpoint_id": provider.lower(),
        "provider_name": provider,
        "usage": float(cost or 0.0),
        "byok_usage_inference": 0.0,
        "requests": int(requests),
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
        "reasoning_tokens": 0,
        "cached_tokens": int(cached or 0),
    }
