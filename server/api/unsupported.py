"""OpenRouter's endpoints that make no sense on this server (other modalities, organisation admin): each answers in
OpenRouter's error shape, saying what this server serves, instead of a bare 404."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends

from server.api.deps import AppParts, PartsDep, require_key
from server.errors import NotFound
from server.schemas.response import ERROR_RESPONSES

# Path roots under /api/v1, as in OpenRouter's API reference.
ROOTS = {
    "embeddings": "embeddings",
    "rerank": "reranking",
    "audio": "audio input and output",
    "images": "image generation",
    "videos": "video generation",
    "workspaces": "workspaces",
    "organization": "organisation management",
    "scim": "SCIM provisioning",
    "byok": "bring-your-own-key providers",
    "analytics": "analytics",
    "datasets": "datasets",
    "files": "file uploads",
    "guardrails": "guardrails",
    "observability": "hosted observability destinations (traces: MISTRAL_LOCAL_OTLP_ENDPOINT)",
}
MODALITY = "This server serves {models} (text and images in, text out): {what} is not available here"

router = APIRouter(dependencies=[Depends(require_key)], tags=["unsupported"], responses=ERROR_RESPONSES)


def _refuse(what: str) -> Callable[[AppParts], Awaitable[None]]:
    async def refuse(gateway: PartsDep) -> None:
        models = ", ".join(m["id"] for m in gateway.catalog.listing()["data"])
        raise NotFound(MODALITY.format(models=models, what=what))

    return refuse


for root, what in ROOTS.items():
    for path in (f"/{root}", f"/{root}/{{rest:path}}"):
        router.add_api_route(
            path,
            _refuse(what),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        )
