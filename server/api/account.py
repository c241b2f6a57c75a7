"""GET /generation (a generation's record) and /key (the calling key), in OpenRouter's shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from server.access.auth import Principal
from server.api.deps import AppParts, KeyDep, PartsDep, require_key
from server.errors import NotFound
from server.gateway_state import budget_spent
from server.schemas.record import GenerationRecord
from server.schemas.response import ERROR_RESPONSES, DataResponse

router = APIRouter(dependencies=[Depends(require_key)], tags=["account"], responses=ERROR_RESPONSES)


def generation_body(r: GenerationRecord) -> dict[str, Any]:
    body = {
        "id": r.id,
        "upstream_id": None,
        "total_cost": r.cost,
        "usage": r.cost,
        "cache_discount": None,
        "upstream_inference_cost": None,
        "created_at": datetime.fromtimestamp(r.created_at, UTC).isoformat(),
        "model": r.model,
        "app_id": None,
        "streamed": r.streamed,
        "cancelled": r.cancelled,
        "provider_name": r.provider,
        "latency": r.ttft_ms if r.ttft_ms is not None else r.latency_ms,
        "moderation_latency": None,
        "generation_time": r.latency_ms,
        "finish_reason": r.finish_reason,
        "native_finish_reason": r.native_finish_reason,
        "service_tier": None,
        "tokens_prompt": r.prompt_tokens,
        "tokens_completion": r.completion_tokens,
        "native_tokens_prompt": r.prompt_tokens,
        "native_tokens_completion": r.completion_tokens,
        "native_tokens_completion_images": 0,
        "native_tokens_reasoning": 0,
        "native_tokens_cached": r.cached_tokens,
        "num_media_prompt": r.num_images,
        "num_input_audio_prompt": 0,
        "num_media_completion": 0,
        "num_search_results": 0,
        "num_fetches": 0,
        "web_search_engine": None,
        "origin": "",
        "is_byok": False,
        "external_user": r.external_user,
        "api_type": r.api_type,
        "preset_id": r.preset_id,
        "router": None,
        "provider_responses": json.loads(r.attempts) or None,
        "user_agent": None,
        "http_referer": None,
        "data_region": "local",
        "workspace_id": None,
    }
    # OpenRouter omits these when unknown.
    optional = {"request_id": r.request_id, "session_id": r.session_id, "response_cache_source_id": r.cache_source_id}
    return body | {k: v for k, v in optional.items() if v is not None}


@router.get("/generation", response_model=DataResponse)
async def get_generation(
    gateway: PartsDep, principal: KeyDep, id: str = Query(..., description="gen-… id")
) -> dict[str, Any]:
    record = await gateway.records.get(id)
    if record is None or record.key_id != principal.key_id:  # another key's record does not exist for this one
        raise NotFound(f"Generation {id} not found")
    return {"data": generation_body(record)}


async def _key_info(gateway: AppParts, principal: Principal) -> dict[str, Any]:
    tokens, usage = await gateway.records.usage(principal.key_id)
    limits = principal.limits
    spent = await budget_spent(gateway.records, principal.key_id, limits)
    remaining = None if limits.cost_budget is None else max(0.0, limits.cost_budget - spent)
    budgets = [] if remaining is None else [_budget(limits.cost_budget or 0.0, spent, remaining)]
    data = {
        "label": principal.label or "local (no keys configured)",
        "limit": limits.cost_budget,
        "limit_reset": None,
        "limit_remaining": remaining,
        "include_byok_in_limit": False,
        "usage": usage,
        "usage_daily": usage,
        "usage_weekly": usage,
        "usage_monthly": usage,
        "byok_usage": 0,
        "byok_usage_daily": 0,
        "byok_usage_weekly": 0,
        "byok_usage_monthly": 0,
        "is_free_tier": False,
        "is_management_key": principal.management,
        "is_provisioning_key": False,
        "creator_user_id": None,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore."},
        "allowed_data_regions": ["local"],
        "budgets": budgets,
        "effective_budget": budgets[0] if budgets else None,
        # No free-tier model here (OpenRouter's daily allowance of free-model requests).
        "free_model_daily_requests": {"limit": 0, "remaining": 0, "used": 0},
        "organization_id": None,
        "workspace_id": None,
        # Ours: the key's configured limits and the tokens it has used.
        "limits": limits.model_dump(),
        "usage_tokens": tokens,
    }
    return {"data": data}


def _budget(limit: float, spent: float, remaining: float) -> dict[str, Any]:
    """A key's cost budget as OpenRouter's KeyBudget: a lifetime limit on the key itself."""
    return {
        "budget_id": None,
        "guardrail_id": None,
        "include_byok": False,
        "limit_usd": limit,
        "remaining_usd": remaining,
        "reset_interval": None,
        "resets_at": None,
        "scope": "key_limit",
        "spend_usd": spent,
    }


@router.get("/key", response_model=DataResponse)
async def get_key(gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    return await _key_info(gateway, principal)


@router.get("/auth/key", response_model=DataResponse, summary="Older alias of /key")
async def get_auth_key(gateway: PartsDep, principal: KeyDep) -> dict[str, Any]:
    return await _key_info(gateway, principal)
