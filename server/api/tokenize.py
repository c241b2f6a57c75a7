"""POST /tokenize and /detokenize: the engine's tokenizer (benchmarks count tokens with them). Only checked fields
reach the engine, and messages take the chat path's limits, image policy and admission."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from server.api.deps import GenerationDep, KeyDep, PartsDep, require_key
from server.api.json_route import OrjsonRoute
from server.schemas.request import DetokenizeRequest, TokenizeRequest
from server.schemas.response import ERROR_RESPONSES

router = APIRouter(
    route_class=OrjsonRoute, dependencies=[Depends(require_key)], tags=["tokenizer"], responses=ERROR_RESPONSES
)


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, generation: GenerationDep, principal: KeyDep) -> dict[str, Any]:
    return await generation.pipeline.tokenize(body, principal)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, gateway: PartsDep, generation: GenerationDep) -> dict[str, Any]:
    payload = {"model": gateway.catalog.default, "tokens": body.tokens}
    return await generation.engine_client.post("/detokenize", payload)
