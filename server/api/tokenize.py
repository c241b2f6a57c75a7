"""POST /tokenize and /detokenize, relayed to the engine's own (benchmarks count tokens with them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from server.api.deps import require_key
from server.schemas.response import ERROR_RESPONSES

router = APIRouter(dependencies=[Depends(require_key)], tags=["tokenizer"], responses=ERROR_RESPONSES)


@router.post("/tokenize")
async def tokenize(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    return await request.app.state.engine_client.post("/tokenize", body)  # type: ignore[no-any-return]


@router.post("/detokenize")
async def detokenize(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    return await request.app.state.engine_client.post("/detokenize", body)  # type: ignore[no-any-return]
