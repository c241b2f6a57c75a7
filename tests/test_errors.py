"""Every gateway error leaves in OpenRouter's shape; readiness is 503 until an engine answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.engine.attached import AttachedEngine
from server.serving import free_port
from server.settings import Settings
from tests.support.scratch import scratch_dir


def nowhere_app() -> TestClient:
    """A gateway attached to a port where no engine listens (the engine is down)."""
    settings = Settings(retry_after_s=7, cache_dir=scratch_dir("gw-"))
    engine = AttachedEngine(f"http://127.0.0.1:{free_port()}", "key", settings.model_id, start_timeout_s=60)
    return TestClient(create_app(settings, engine), base_url="http://127.0.0.1")


def test_not_ready_until_the_engine_answers() -> None:
    with nowhere_app() as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "7"
        assert ready.json()["error"]["code"] == 503
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 503
        assert chat.headers["retry-after"] == "7"
        # OpenRouter's availability object: no engine can take it now, try again (in the Retry-After's time)
        availability = {"code": "temporarily_unavailable", "retryable": True, "retry_after": 7}
        starting = {"code": 503, "message": "Engine is starting", "metadata": {"error_type": "provider_overloaded"}}
        assert chat.json() == {"error": starting | {"availability": availability}}
        assert ready.json()["error"]["availability"] == availability


def test_unknown_route_is_a_404_in_openrouter_shape() -> None:
    with nowhere_app() as client:
        r = client.get("/nope")
        assert r.status_code == 404
        assert r.json() == {"error": {"code": 404, "message": "Not Found", "metadata": {"error_type": "not_found"}}}
        r = client.delete("/health/live")
        assert r.status_code == 405
        assert r.json()["error"]["code"] == 405


def test_oversized_bodies_are_a_413_in_openrouter_shape() -> None:
    settings = Settings(max_body_bytes=2048, cache_dir=scratch_dir("gw-"))
    engine = AttachedEngine(f"http://127.0.0.1:{free_port()}", "key", settings.model_id, start_timeout_s=60)
    big = b'{"messages": [{"role": "user", "content": "' + b"x" * 4096 + b'"}]}'
    with TestClient(create_app(settings, engine), base_url="http://127.0.0.1") as client:
        declared = client.post("/api/v1/chat/completions", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        too_large = {"code": 413, "message": "Request body is larger than 2048 bytes"}
        assert declared.json() == {"error": too_large | {"metadata": {"error_type": "payload_too_large"}}}

        def chunks() -> Iterator[bytes]:  # no content-length: counted as it arrives
            for i in range(0, len(big), 512):
                yield big[i : i + 512]

        chunked = client.post(
            "/api/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == 413


def test_malformed_json_and_wrong_types_are_400_not_422() -> None:
    with nowhere_app() as client:
        r = client.post("/api/v1/chat/completions", content=b"{bad", headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("Invalid JSON in request body")
        r = client.post("/api/v1/chat/completions", json={"messages": "hello"})
        assert r.status_code == 400
        assert "messages" in r.json()["error"]["message"]
        r = client.post(
            "/api/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}], "provider": {"bogus": True}},
        )
        assert r.status_code == 400
        assert "provider.bogus" in r.json()["error"]["message"]


def test_integers_past_64_bits_are_400s() -> None:
    """Found by fuzzing: the engine's JSON encoder takes 64-bit integers; bigger ones were a 500."""
    with nowhere_app() as client:
        for body in ({"prompt": [2**70], "max_tokens": 1}, {"prompt": "x", "seed": 2**64}):
            r = client.post("/api/v1/completions", json=body)
            assert r.status_code == 400, body
            assert r.json()["error"]["code"] == 400


@pytest.mark.parametrize(
    "method_path",
    ["POST /api/v1/embeddings", "POST /v1/audio/speech", "POST /api/v1/images/generations", "GET /api/v1/workspaces"],
)
def test_endpoints_of_other_modalities_say_what_this_server_serves(method_path: str) -> None:
    method, path = method_path.split()
    with nowhere_app() as client:
        r = client.request(method, path, json={"model": "x", "input": "hi"})
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert r.json()["error"]["code"] == 404
    assert message.startswith("This server serves mistralai/mistral-small-3.1-24b-instruct (text and images in")
