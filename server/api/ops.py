"""Operational routes: liveness (the gateway answers), readiness (an engine can generate), status, metrics. Readiness
and status show every engine of the fleet by name (state, load, prefix-cache hit rate; never an address or key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api.deps import KeyDep, PartsDep, require_key
from server.errors import EngineUnavailable, Forbidden, availability

router = APIRouter(dependencies=[Depends(require_key)], tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(gateway: PartsDep) -> dict[str, object]:
    engine = gateway.engine
    engines = [m.describe() for m in engine.members]
    retry = gateway.settings.retry_after_s
    if gateway.admission.draining:
        raise EngineUnavailable("Server is shutting down", retry_after=retry)
    if not engine.ready:
        state = engine.state.value
        metadata: dict[str, object] = {"engine_state": state, "engines": engines}
        if engine.last_failure is not None:  # a start failed and it is being tried again: say why
            metadata["last_failure"] = engine.last_failure
        gone = availability("temporarily_unavailable", retry)
        raise EngineUnavailable(f"Engine is {state}", retry_after=retry, metadata=metadata, availability=gone)
    summary = {"state": engine.state.value, "restarts": engine.restarts}
    return {"status": "ready", "engine": summary, "engines": engines}


@router.get("/status")
async def status(gateway: PartsDep) -> dict[str, object]:
    """A small live summary for people (the playground's status line): engine state and the admission queue."""
    engine, admission = gateway.engine, gateway.admission
    return {
        "engine": {"state": engine.state.value, "ready": engine.ready, "restarts": engine.restarts},
        "engines": [m.describe() for m in engine.members],
        "in_flight": admission.in_flight,
        "waiting": admission.waiting,
        "draining": admission.draining,
        "model": gateway.catalog.default,
    }


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(gateway: PartsDep, principal: KeyDep) -> PlainTextResponse:
    """Prometheus exposition: every key's label and tokens, so a management key (or the operator listed /metrics in
    public_routes)."""
    if not principal.operator:
        raise Forbidden("Metrics show every key's usage: they need a management key")
    body = generate_latest(gateway.metrics.registry)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
