"""POST /responses: OpenAI's Responses API, as OpenRouter serves it (server/dialects/responses.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from server.api.deps import KeyDep, require_key
from server.api.generate import with_session
from server.api.json_route import OrjsonRoute
from server.dialects.responses import ResponsesRequest, to_chat
from server.dialects.responses_stream import as_responses
from server.schemas.response import ERROR_RESPONSES

router = APIRouter(
    route_class=OrjsonRoute, dependencies=[Depends(require_key)], tags=["generation"], responses=ERROR_RESPONSES
)


@router.post("/responses", summary="Responses API (stateless; streaming or not)")
async def responses(body: ResponsesRequest, request: Request, principal: KeyDep) -> Response:
    chat = with_session(to_chat(body), request)
    dispatcher = request.app.state.dispatcher
    # A hosted upstream gets the chat request this one became.
    raw = chat.model_dump(mode="json", exclude_none=True, by_alias=True) if dispatcher.upstream is not None else {}
    answer = await dispatcher.chat(chat, raw, request.headers, principal)
    return as_responses(body, answer)
