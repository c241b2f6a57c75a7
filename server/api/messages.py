"""POST /messages and /messages/count_tokens: Anthropic's Messages API, as OpenRouter serves it
(server/dialects/messages.py). The Anthropic SDK sends its key as `x-api-key`, which server/access/guard.py takes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from server.api.deps import GenerationDep, KeyDep, require_key
from server.api.generate import dispatched
from server.api.json_route import OrjsonRoute
from server.dialects.messages import CountTokensRequest, MessagesRequest, chat_messages, to_chat, tools
from server.dialects.messages_stream import as_messages
from server.schemas.request import TokenizeRequest
from server.schemas.response import ERROR_RESPONSES

router = APIRouter(
    route_class=OrjsonRoute, dependencies=[Depends(require_key)], tags=["generation"], responses=ERROR_RESPONSES
)


@router.post("/messages", summary="Anthropic Messages API (streaming or not)")
async def messages(body: MessagesRequest, request: Request, generation: GenerationDep, principal: KeyDep) -> Response:
    return as_messages(await dispatched(to_chat(body), request, generation, principal))


@router.post("/messages/count_tokens", summary="Input tokens of a Messages request, by the engine's tokenizer")
async def count_tokens(body: CountTokensRequest, generation: GenerationDep, principal: KeyDep) -> dict[str, Any]:
    counted = TokenizeRequest.model_validate(
        {"model": body.model, "messages": chat_messages(body), "tools": tools(body.tools) if body.tools else None}
    )
    answer = await generation.pipeline.tokenize(counted, principal)
    return {"input_tokens": answer["count"]}
