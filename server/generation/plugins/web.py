"""The web plugins (`web`, and OpenRouter's web search options) search the internet: a private server answers them
with OpenRouter's 404 for a capability no endpoint has, which sends the request on to the hosted upstream when the
operator configured one and the request may leave the machine (server/generation/dispatch.py)."""

from __future__ import annotations

from server.errors import NotFound
from server.schemas.request import ChatRequest

WEB_PLUGINS = ("web", "web-fetch")


def refuse_web(req: ChatRequest) -> None:
    asked = [p.id for p in req.plugins or [] if p.id in WEB_PLUGINS and p.enabled]
    if req.web_search_options is not None:
        asked.append("web_search_options")
    if asked:
        raise NotFound(
            f"No endpoints found that support {', '.join(asked)} on this server: web search needs a hosted upstream, "
            "and nothing leaves this machine unless the operator configures one"
        )
