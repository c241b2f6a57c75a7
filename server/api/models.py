"""The model catalogue in OpenRouter's shape: list, lookup, endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from server.api.deps import PartsDep, require_key
from server.schemas.response import ERROR_RESPONSES, DataResponse, ModelList

router = APIRouter(dependencies=[Depends(require_key)], tags=["models"], responses=ERROR_RESPONSES)


@router.get("/models", response_model=ModelList)
async def list_models(
    gateway: PartsDep, offset: int = Query(0, ge=0), limit: int | None = Query(None, ge=1)
) -> dict[str, Any]:
    return gateway.catalog.listing(offset, limit)


@router.get("/models/count", response_model=DataResponse)
async def count_models(gateway: PartsDep) -> dict[str, Any]:
    return {"data": {"count": len(gateway.catalog.listing()["data"])}}


@router.get("/models/{author}/{slug}/endpoints", response_model=DataResponse)
async def model_endpoints(author: str, slug: str, gateway: PartsDep) -> dict[str, Any]:
    return gateway.catalog.endpoints(author, slug)


@router.get("/model/{author}/{slug}", response_model=DataResponse)
async def get_model(author: str, slug: str, gateway: PartsDep) -> dict[str, Any]:
    return {"data": gateway.catalog.lookup(author, slug)}
