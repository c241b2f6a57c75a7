"""Serve the playground: `/` and `/playground` (the page), `/playground/static/NAME` (its assets, all local).

The page holds no data, so it is public; everything it does goes through the API with the user's key. A strict
Content-Security-Policy keeps it to this origin: no script, style, font or connection anywhere else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from server.api.deps import require_key
from server.errors import NotFound

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
# Every asset, by name: nothing outside this list is ever read from disk.
ASSETS = {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}
MEDIA = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}

router = APIRouter(dependencies=[Depends(require_key)], tags=["playground"], include_in_schema=False)


@router.get("/")
@router.get("/playground")
async def page() -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/playground/static/{name:path}")
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"No playground asset {name!r}")
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"), headers=HEADERS)
