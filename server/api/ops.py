"""Operational routes: liveness (the gateway answers), readiness (the engine can generate), status, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api.deps import require_key
from server.errors import EngineUnavailable

router = APIRouter(dependencies=[Depends(require_key)], tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> dict[str, object]:
    engine = request.app.state.engine
    retry = request.app.state.settings.retry_after_s
    if request.app.state.admission.draining:
        raise EngineUnavailable("Server is shutting down", retry_after=retry)
    if not engine.ready:
        state = engine.state.value
        raise EngineUnavailable(f"Engine is {state}", retry_after=retry, metadata={"engine_state": state})
    return {"status": "ready", "engine": {"state": engine.state.value, "restarts": engine.restarts}}


@router.get("/status")
async def status(request: Request) -> dict[str, object]:
    """A small live summary for people (the playground's status line): engine state and the admission queue."""
    engine, admission = request.app.state.engine, request.app.state.admission
    return {
        "engine": {"state": engine.state.value, "ready": engine.ready, "restarts": engine.restarts},
        "in_flight": admission.in_flight,
        "waiting": admission.waiting,
        "draining": admission.draining,
        "model": request.app.state.settings.model_id,
    }


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus exposition (needs a key unless the operator lists /metrics in public_routes)."""
    body = generate_latest(request.app.state.metrics.registry)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
