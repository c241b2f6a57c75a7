"""OpenRouter's plugins that fit a private server, read from a chat request before it is checked (`wanted`):
file-parser (PDFs, read once the request is admitted: file_parser.py), response-healing (response_healing.py),
context-compression (the `middle-out` transform's plugin form: server/generation/compression.py), and the web plugins'
refusal. Which plugins a request uses is decided here, so a request that uses none goes no further.

The web plugins (`web`, `web-fetch`, and OpenRouter's web search options) search the internet: a private server
answers them with OpenRouter's 404 for a capability no endpoint has, which sends the request on to the hosted
upstream when the operator configured one and the request may leave the machine (server/generation/dispatch.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from server.errors import NotFound
from server.schemas.request import ChatRequest, UnsupportedPart, UserMessage

WEB_PLUGINS = ("web", "web-fetch")


@dataclass(frozen=True)
class Wanted:
    """What the request's plugins ask of the rest of the path."""

    heal_json: bool  # make the answer valid JSON (response-healing)
    middle_out: bool  # fit the prompt to the context by dropping its middle (context-compression, middle-out)
    files: bool  # the request has `file` parts for the file-parser


def wanted(req: ChatRequest) -> Wanted:
    """What the request's plugins want; the web plugins are refused here. PDFs are read later, once the request is
    admitted (file_parser.py)."""
    refuse_web(req)
    middle_out = "middle-out" in (req.transforms or []) or enabled(req, "context-compression")
    files = any(isinstance(m, UserMessage) and isinstance(m.content, list) and any(map(is_file, m.content))
                for m in req.messages)  # fmt: skip
    return Wanted(heal_json=heal_wanted(req), middle_out=middle_out, files=files)


def is_file(part: object) -> TypeGuard[UnsupportedPart]:
    """A `file` content part (the file-parser's)."""
    return isinstance(part, UnsupportedPart) and part.type == "file"


def enabled(req: ChatRequest, plugin_id: str) -> bool:
    return any(p.id == plugin_id and p.enabled for p in req.plugins or [])


def refuse_web(req: ChatRequest) -> None:
    asked = [p.id for p in req.plugins or [] if p.id in WEB_PLUGINS and p.enabled]
    if req.web_search_options is not None:
        asked.append("web_search_options")
    if asked:
        raise NotFound(
            f"No endpoints found that support {', '.join(asked)} on this server: web search needs a hosted upstream, "
            "and nothing leaves this machine unless the operator configures one"
        )


def heal_wanted(req: ChatRequest) -> bool:
    """Response-healing: a non-streamed answer asked for as JSON, with the plugin on."""
    fmt = req.response_format
    json_asked = fmt is not None and fmt.type in ("json_object", "json_schema")
    return json_asked and not req.stream and enabled(req, "response-healing")
