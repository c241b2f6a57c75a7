"""Keys on every route: a route added without protection fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.access.auth import KeyRing, KeySpec, hash_key, load_keys_file, new_key
from server.app import create_app
from server.engine.attached import AttachedEngine
from server.errors import ConfigError, Forbidden, Unauthorized
from server.serving import check_exposure, free_port
from server.settings import Settings
from tests.support.scratch import scratch_dir

KEY = new_key()
KEYS = json.dumps([{"label": "alice", "sha256": hash_key(KEY)}])


def app_with_keys(monkeypatch: pytest.MonkeyPatch, **overrides: object) -> TestClient:
    monkeypatch.setenv("MISTRAL_LOCAL_API_KEYS", KEYS)
    settings = Settings(cache_dir=scratch_dir("gw-"), **overrides)  # type: ignore[arg-type]
    engine = AttachedEngine(f"http://127.0.0.1:{free_port()}", "k", settings.model_id, start_timeout_s=60)
    return TestClient(create_app(settings, engine), base_url="http://127.0.0.1")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def unauthorized(path: str) -> dict[str, Any]:
    """OpenRouter's 401, its error_type where each API puts it (Messages: in `error`; Responses: at the top)."""
    error = {"code": 401, "message": "No auth credentials found"}
    if path.endswith(("/messages", "/messages/count_tokens")):
        return {"error": error | {"error_type": "authentication"}}
    if path.endswith("/responses"):
        return {"error": error, "error_type": "authentication"}
    return {"error": error | {"metadata": {"error_type": "authentication"}}}


def test_every_route_needs_a_key_except_the_public_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with app_with_keys(monkeypatch) as client:
        routes = [r for r in client.app.routes if isinstance(r, APIRoute)]  # type: ignore[attr-defined]
        assert len(routes) >= 20
        public = {("GET", "/health/live"), ("GET", "/api/v1/models"), ("GET", "/v1/models")}
        # The playground page and its assets hold no data (the page calls the API with the user's key).
        public |= {("GET", "/"), ("GET", "/playground"), ("GET", "/playground/static/{name:path}")}
        for route in routes:
            for method in route.methods:
                r = client.request(method, concrete(route.path), json={})
                if (method, route.path) in public:
                    assert r.status_code != 401, route.path
                else:
                    assert r.status_code == 401, f"{method} {route.path} answered {r.status_code} without a key"
                    assert r.json() == unauthorized(route.path), route.path


def test_wrong_key_and_right_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with app_with_keys(monkeypatch) as client:
        wrong = client.get("/api/v1/key", headers={"Authorization": "Bearer sk-ml-nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "Invalid API key"
        right = client.get("/api/v1/key", headers={"Authorization": f"Bearer {KEY}"})
        assert right.status_code == 200
        assert right.json()["data"]["label"] == "alice"
        assert client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()["paths"]


def test_operator_can_make_routes_public(monkeypatch: pytest.MonkeyPatch) -> None:
    with app_with_keys(monkeypatch, public_routes=("/health/live", "/health/ready")) as client:
        assert client.get("/health/ready").status_code == 503  # reachable: the engine is just not there
        assert client.get("/api/v1/models").status_code == 401  # no longer public


def test_keyring_rules() -> None:
    ring = KeyRing(
        [KeySpec(label="a", sha256=hash_key("k1")), KeySpec(label="b", sha256=hash_key("k2"), disabled=True)]
    )
    assert ring.authenticate("Bearer k1").label == "a"
    assert ring.authenticate("bearer  k1 ").label == "a"
    with pytest.raises(Forbidden):
        ring.authenticate("Bearer k2")
    for header in (None, "", "Basic k1", "Bearer "):
        with pytest.raises(Unauthorized):
            ring.authenticate(header)
    with pytest.raises(ConfigError, match="unique"):
        KeyRing([KeySpec(label="a", sha256=hash_key("x")), KeySpec(label="a", sha256=hash_key("y"))])
    assert KeyRing([]).authenticate(None).label is None  # no keys: open


def test_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - label: ci\n    sha256: {hash_key('abc')}\n    limits: {{requests_per_minute: 5}}\n")
    [spec] = load_keys_file(path)
    assert spec.label == "ci" and spec.limits.requests_per_minute == 5
    path.write_text("keys:\n  - label: ci\n    key: plaintext-is-refused\n")
    with pytest.raises(ConfigError, match="invalid"):
        load_keys_file(path)


def test_refuses_open_non_loopback_serving() -> None:
    check_exposure(Settings(host="127.0.0.1"), keys_enabled=False)
    check_exposure(Settings(host="0.0.0.0"), keys_enabled=True)
    check_exposure(Settings(host="0.0.0.0", insecure_no_auth=True), keys_enabled=False)
    with pytest.raises(ConfigError, match="--insecure-no-auth"):
        check_exposure(Settings(host="0.0.0.0"), keys_enabled=False)
    with pytest.raises(ConfigError):
        check_exposure(Settings(host="::"), keys_enabled=False)
