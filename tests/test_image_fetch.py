"""Remote image fetching under each policy, against servers and names on this machine."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from server.errors import InvalidRequest
from server.image_fetch import FetchPolicy, fetch_image, refusal


def policy(mode: str, allow: tuple[str, ...] = (), max_bytes: int = 1 << 20, timeout_s: float = 2) -> FetchPolicy:
    return FetchPolicy(mode=mode, allowlist=frozenset(allow), max_bytes=max_bytes, timeout_s=timeout_s)


def fetch(url: str, p: FetchPolicy) -> bytes:
    async def run() -> bytes:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await fetch_image(client, url, p)

    return asyncio.run(run())


def refused(url: str, p: FetchPolicy) -> str:
    with pytest.raises(InvalidRequest) as info:
        fetch(url, p)
    return info.value.message


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("[fd00:ec2::254]", "private"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.9", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[fe80::1]", "link-local (cloud metadata)"),
    ],
)
def test_public_policy_refuses_internal_addresses_before_connecting(host: str, why: str) -> None:
    message = refused(f"http://{host}:9/x.png", policy("public"))
    assert f"resolves to a {why} address" in message


def test_refusal_classification() -> None:
    assert refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert refusal(ipaddress.ip_address("2001:4860:4860::8888")) is None
    assert refusal(ipaddress.ip_address("100.64.0.1")) is not None  # carrier-grade NAT: not public


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/a.png", "gopher://x/", "//no-scheme"])
def test_only_http_and_https(url: str) -> None:
    assert "must be http(s)" in refused(url, policy("public"))


def test_deny_policy(image_server: str) -> None:
    assert "remote image URLs are disabled" in refused(f"{image_server}/photo.png", policy("deny"))


def test_allowlist_fetches_listed_hosts_and_checks_every_redirect_hop(image_server: str) -> None:
    allow = policy("allowlist", ("127.0.0.1",))
    assert fetch(f"{image_server}/photo.png", allow).startswith(b"\x89PNG")
    assert fetch(f"{image_server}/redirect-same", allow).startswith(b"\x89PNG")
    assert "localhost is not on this server's allowlist" in refused(f"{image_server}/redirect-localhost", allow)
    assert "redirected more than 5 times" in refused(f"{image_server}/redirect-loop", allow)
    assert "not on this server's allowlist" in refused(f"{image_server}/photo.png", policy("allowlist", ("x.org",)))


def test_size_and_time_limits(image_server: str) -> None:
    allow = ("127.0.0.1",)
    assert "larger than 1000 bytes" in refused(f"{image_server}/huge.png", policy("allowlist", allow, 1000))
    assert "larger than 100000 bytes" in refused(f"{image_server}/endless.png", policy("allowlist", allow, 100_000))
    assert "timed out after 1 s" in refused(f"{image_server}/slow.png", policy("allowlist", allow, timeout_s=1))
