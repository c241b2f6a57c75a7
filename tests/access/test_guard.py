"""The front door (server/access/guard.py): the key is checked before the body is read, and only this server's Host
names are answered (DNS rebinding). Each test is an attack that worked before the guard."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from server.access.auth import hash_key, new_key
from server.access.guard import ANONYMOUS_BODY_BYTES, allowed_hosts, host_name
from tests.support.served_app import gateway_settings, served_app

KEY = new_key()
KEYS = json.dumps([{"label": "alice", "sha256": hash_key(KEY)}])


def raw_exchange(url: str, head: bytes, timeout_s: float = 10) -> bytes:
    """Send `head` (request line and headers, no body) and read what comes back until the server closes or goes
    quiet: a server that waits for the declared body answers nothing."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        sock.sendall(head)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b'"error"' in answer:
                    break
        except TimeoutError:
            pass
    return answer


def test_without_a_key_invalid_json_is_401_not_400(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_LOCAL_API_KEYS", KEYS)
    with served_app(gateway_settings()) as url:
        r = httpx.post(f"{url}/api/v1/chat/completions", content=b"{bad", headers={"content-type": "application/json"})
        assert r.status_code == 401
        expected = {"code": 401, "message": "No auth credentials found", "metadata": {"error_type": "authentication"}}
        assert r.json() == {"error": expected}
        wrong = httpx.post(
            f"{url}/api/v1/chat/completions", content=b"{bad", headers={"authorization": "Bearer sk-ml-wrong"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "Invalid API key"
        # With the key, the body is read and judged as before.
        right = httpx.post(
            f"{url}/api/v1/chat/completions",
            content=b"{bad",
            headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        )
        assert right.status_code == 400


def test_without_a_key_the_body_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client announces 60 MB and sends none of it: the 401 comes at once. A gateway that read bodies before
    checking keys would wait for the 60 MB (and then parse them) and answer nothing here."""
    monkeypatch.setenv("MISTRAL_LOCAL_API_KEYS", KEYS)
    with served_app(gateway_settings()) as url:
        head = (
            b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: 60000000\r\n\r\n"
        )
        answer = raw_exchange(url, head)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"No auth credentials found" in answer


def test_a_public_route_takes_only_a_small_body_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_LOCAL_API_KEYS", KEYS)
    settings = gateway_settings(public_routes=("/health/live", "POST /api/v1/tokenize"))
    with served_app(settings) as url:
        big = b"x" * (ANONYMOUS_BODY_BYTES + 1)
        r = httpx.post(f"{url}/api/v1/tokenize", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == 413


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "rebind.127.0.0.1.nip.io"])
def test_a_loopback_gateway_refuses_foreign_host_names(host: str) -> None:
    """DNS rebinding: a page on attacker.example re-points its name at 127.0.0.1 and calls the keyless gateway."""
    with served_app(gateway_settings()) as url:
        r = httpx.get(f"{url}/api/v1/models", headers={"host": host})
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("Invalid host header")
        r = httpx.post(f"{url}/api/v1/chat/completions", headers={"host": host}, json={"messages": []})
        assert r.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.1:1"])
def test_a_loopback_gateway_answers_its_own_names(host: str) -> None:
    with served_app(gateway_settings()) as url:
        assert httpx.get(f"{url}/api/v1/models", headers={"host": host}).status_code == 200


def test_configured_names_replace_the_defaults() -> None:
    with served_app(gateway_settings(allowed_hosts=("llm.internal",))) as url:
        assert httpx.get(f"{url}/api/v1/models", headers={"host": "llm.internal:8000"}).status_code == 200
        assert httpx.get(f"{url}/api/v1/models", headers={"host": "127.0.0.1"}).status_code == 400


def test_host_rules() -> None:
    assert allowed_hosts((), "0.0.0.0", loopback=False) == {"*"}
    assert allowed_hosts((), "127.0.0.1", loopback=True) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(("[::1]", "A.example"), "0.0.0.0", loopback=False) == {"::1", "a.example"}
    assert host_name(b"[::1]:8000") == "::1"
    assert host_name(b"Example.org:80") == "example.org"
    assert host_name(b"::1") == "::1"
    assert host_name(b"") == ""


def test_anthropic_clients_key_in_x_api_key_is_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_LOCAL_API_KEYS", KEYS)
    with served_app(gateway_settings()) as url:
        assert httpx.get(f"{url}/api/v1/key", headers={"x-api-key": KEY}).json()["data"]["label"] == "alice"
        assert httpx.get(f"{url}/api/v1/key", headers={"x-api-key": "sk-wrong"}).status_code == 401
        assert httpx.get(f"{url}/api/v1/key").status_code == 401
