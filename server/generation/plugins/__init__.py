"""OpenRouter's plugins that fit a private server: response-healing, file-parser (PDFs, parsed here), and the web
plugins' refusal (they need a hosted upstream). `prepare` applies them to a chat request before it is checked."""

from __future__ import annotations

from server.generation.plugins import file_parser, response_healing
from server.generation.plugins.web import refuse_web
from server.schemas.request import ChatRequest


async def prepare(req: ChatRequest, max_images: int, max_edge: int) -> tuple[ChatRequest, bool]:
    """The request as the engine will read it, and whether its answer is to be made valid JSON. PDFs are read here
    (one at a time, off the event loop) before anything else is checked."""
    refuse_web(req)
    if file_parser.has_files(req):
        req = await file_parser.parse_files(req, max_images, max_edge)
    return req, response_healing.wanted(req)
