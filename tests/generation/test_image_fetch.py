"""Remote image fetching under each policy, against servers and names on this machine."""

from __future__ import annotations

import asyncio
import ipaddress
import tracemalloc

import httpx
import pytest

from server.errors import InvalidRequest
from server.generation.image_fetch import FetchPolicy, fetch_image, refusal
from tests.support.image_server import BOMB, SEEN_HEADERS


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
    assert refusal(ipaddress.ip_address("64:ff9b::808:808")) is None  # NAT64 of 8.8.8.8: public
    assert refusal(ipaddress.ip_address("100.64.0.1")) == "private"  # carrier-grade NAT


@pytest.mark.parametrize(
    ("address", "why"),
    [
        # 6to4 of 127.0.0.1 and of 10.0.0.1: Python 3.11.7's tables call these global.
        ("2002:7f00:1::", "tunnel (embeds an IPv4 address)"),
        ("2002:a00:1::1", "tunnel (embeds an IPv4 address)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "tunnel (embeds an IPv4 address)"),  # Teredo of 127.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata)"),  # NAT64 of 169.254.169.254
        ("::7f00:1", "reserved"),  # IPv4-compatible (deprecated) 127.0.0.1
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "reserved"),  # benchmarking
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fec0::1", "reserved"),  # site-local
    ],
)
def test_special_ranges_are_refused_whatever_pythons_tables_say(address: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


def test_allowlist_is_checked_before_the_name_is_resolved() -> None:
    # A name that cannot resolve: refused for not being listed, not for failing DNS (no query was made).
    message = refused("http://never-resolves.invalid/x.png", policy("allowlist", ("127.0.0.1",)))
    assert "never-resolves.invalid is not on this server's allowlist" in message


def test_a_decompression_bomb_is_refused_without_expanding(image_server: str) -> None:
    """980 bytes of `gzip, gzip` used to become ~1 GB in memory before the size limit counted them."""
    assert len(BOMB) < 64 * 1024
    tracemalloc.start()
    try:
        message = refused(f"{image_server}/bomb.png", policy("allowlist", ("127.0.0.1",)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "'gzip, gzip'-encoded body" in message
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB while refusing a 256 MiB bomb"
    assert SEEN_HEADERS["/bomb.png"]["Accept-Encoding"] == "identity"


def test_encodings_other_than_identity_are_refused(image_server: str) -> None:
    allow = policy("allowlist", ("127.0.0.1",))
    assert "'gzip'-encoded body" in refused(f"{image_server}/gzipped.png", allow)
    assert fetch(f"{image_server}/identity.png", allow).startswith(b"\x89PNG")


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
