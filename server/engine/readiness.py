"""Is the engine ready to serve? Process health alone is not enough (vLLM's `/health` answers while the model
is unusable), so readiness also needs the served model listed and one real one-token generation."""

from __future__ import annotations

import httpx

PROBE_TIMEOUT_S = 30.0


class NotReady(Exception):
    """The probe's step that failed, and why."""


async def probe(client: httpx.AsyncClient, url: str, api_key: str, model: str) -> int:
    """The served context length, once /health, /v1/models and a one-token completion all succeed; else NotReady."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}  # "Bearer " alone is not a valid header
    try:
        health = await client.get(f"{url}/health", timeout=PROBE_TIMEOUT_S)
        if health.status_code != 200:
            raise NotReady(f"/health answered {health.status_code}")
        models = await client.get(f"{url}/v1/models", headers=headers, timeout=PROBE_TIMEOUT_S)
        if models.status_code != 200:
            raise NotReady(f"/v1/models answered {models.status_code}")
        listed = {m.get("id"): m for m in models.json().get("data", [])}
        if model not in listed:
            raise NotReady(f"the engine does not serve {model}")
        body = {"model": model, "prompt": "ping", "max_tokens": 1, "temperature": 0}
        gen = await client.post(f"{url}/v1/completions", json=body, headers=headers, timeout=PROBE_TIMEOUT_S)
        if gen.status_code != 200:
            raise NotReady(f"a one-token generation answered {gen.status_code}")
        return int(listed[model]["max_model_len"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise NotReady(f"{type(exc).__name__}: {exc}") from exc
