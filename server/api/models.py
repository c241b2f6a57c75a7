"""The model catalogue in OpenRouter's shape: list, lookup, endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from server.api.deps import require_key
from server.schemas.response import ERROR_RESPONSES, DataResponse, ModelList

router = APIRouter(dependencies=[Depends(require_key)], tags=["models"], responses=ERROR_RESPONSES)


@router.get("/models", response_model=ModelList)
async def list_models(
    request: Request, offset: int = Query(0, ge=0), limit: int | None = Query(None, ge=1)
) -> dict[str, Any]:
    return request.app.state.catalog.listing(offset, limit)  # type: ignore[no-any-return]


@router.get("/models/count", response_model=DataResponse)
async def count_models(request: Request) -> dict[str, Any]:
    return {"data": {"count": len(request.app.state.catalog.listing()["data"])}}


@router.get("/models/{author}/{slug}/endpoints", response_model=DataResponse)
async def model_endpoints(author: str, slug: str, request: Request) -> dict[str, Any]:
    return request.app.state.catalog.endpoints(author, slug)  # type: ignore[no-any-return]


@router.get("/model/{author}/{slug}", response_model=DataResponse)
async def get_model(author: str, slug: str, request: Request) -> dict[str, Any]:
    return {"data": request.app.state.catalog.lookup(author, slug)}
