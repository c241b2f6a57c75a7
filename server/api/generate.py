"""POST /chat/completions and /completions (legacy text)."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from server.access.auth import Principal
from server.api.deps import Generation, GenerationDep, KeyDep, require_key
from server.api.json_route import OrjsonRoute
from server.schemas.request import ChatRequest, CompletionRequest, SamplingFields
from server.schemas.response import ERROR_RESPONSES, ChatResponse, CompletionResponse

router = APIRouter(
    route_class=OrjsonRoute, dependencies=[Depends(require_key)], tags=["generation"], responses=ERROR_RESPONSES
)


R = TypeVar("R", bound=SamplingFields)


def with_session(body: R, request: Request) -> R:
    """OpenRouter's `x-session-id` header stands for the body's `session_id` (the body wins)."""
    header = request.headers.get("x-session-id")
    if body.session_id is not None or not header:
        return body
    return body.model_copy(update={"session_id": header[:256]})


async def dispatched(chat: ChatRequest, request: Request, generation: Generation, principal: Principal) -> Response:
    """A chat request another API's request became (server/dialects/), through the same front door as chat; a
    hosted upstream gets it in chat form."""
    dispatch = generation.dispatch
    raw = chat.model_dump(mode="json", exclude_none=True, by_alias=True) if dispatch.upstream is not None else {}
    return await dispatch.chat(with_session(chat, request), raw, request.headers, principal)


@router.post("/chat/completions", response_model=ChatResponse, summary="Chat completion (streaming or not)")
async def chat_completions(
    body: ChatRequest, request: Request, generation: GenerationDep, principal: KeyDep
) -> Response:
    dispatch = generation.dispatch
    # The client's own body, for a hosted upstream (its fields go there as they came); parsed only if one exists.
    raw = await request.json() if dispatch.upstream is not None else {}
    return await dispatch.chat(with_session(body, request), raw, request.headers, principal)


@router.post("/completions", response_model=CompletionResponse, summary="Legacy text completion")
async def completions(
    body: CompletionRequest, request: Request, generation: GenerationDep, principal: KeyDep
) -> Response:
    return await generation.dispatch.complete(with_session(body, request), principal)
