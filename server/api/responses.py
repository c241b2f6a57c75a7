"""POST /responses: OpenAI's Responses API, as OpenRouter serves it (server/dialects/responses.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from server.api.deps import GenerationDep, KeyDep, require_key
from server.api.generate import dispatched
from server.api.json_route import OrjsonRoute
from server.dialects.responses import ResponsesRequest, to_chat
from server.dialects.responses_stream import as_responses
from server.schemas.response import ERROR_RESPONSES

router = APIRouter(
    route_class=OrjsonRoute, dependencies=[Depends(require_key)], tags=["generation"], responses=ERROR_RESPONSES
)


@router.post("/responses", summary="Responses API (stateless; streaming or not)")
async def responses(body: ResponsesRequest, request: Request, generation: GenerationDep, principal: KeyDep) -> Response:
    return as_responses(body, await dispatched(to_chat(body), request, generation, principal))
