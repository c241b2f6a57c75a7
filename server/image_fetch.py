"""Fetching remote images under the operator's policy, so a client cannot make the gateway reach what it should not.

- `deny`: no remote images; only `data:` URLs.
- `allowlist`: only the listed hosts (names or addresses), whatever they resolve to.
- `public` (default): any host whose every address is public. Loopback, private, link-local (cloud metadata
  lives there), multicast, reserved and unspecified addresses are refused, for IPv4 and IPv6 (and IPv4 mapped into
  IPv6), after DNS resolution.
Every redirect hop is checked the same way, and the connection goes to the address that was checked (with the
original Host header and TLS server name), so DNS cannot answer differently between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from server.errors import InvalidRequest

MAX_REDIRECTS = 5
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    mode: str  # "deny" | "allowlist" | "public"
    allowlist: frozenset[str]
    max_bytes: int
    timeout_s: float


def refusal(ip: IpAddress) -> str | None:
    """Why `ip` may not be fetched under the public policy (None: it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = [
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata)", ip.is_link_local),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ]
    return next((name for name, hit in checks if hit), None if ip.is_global else "non-public")


async def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidRequest(f"the image host {host} could not be resolved") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def checked_address(url: str, policy: FetchPolicy) -> tuple[httpx.URL, IpAddress]:
    """The URL and the address it may be fetched from; InvalidRequest saying why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(f"image URLs must be http(s) or data:image URLs (got {parts.scheme or 'no'} scheme)")
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidRequest("the image URL has no host")
    if policy.mode == "deny":
        raise InvalidRequest("remote image URLs are disabled on this server; send the image as a data: URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if policy.mode == "allowlist":
        if host not in policy.allowlist:
            raise InvalidRequest(f"the image host {host} is not on this server's allowlist")
        return httpx.URL(url), addresses[0]
    for ip in addresses:
        if (why := refusal(ip)) is not None:
            raise InvalidRequest(f"the image host {host} resolves to a {why} address ({ip}); refused")
    return httpx.URL(url), addresses[0]


def _pinned(url: httpx.URL, ip: IpAddress) -> httpx.Request:
    """A request for `url` that connects to `ip`, keeping the Host header and the TLS server name."""
    netloc = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    if url.port is not None:
        netloc += f":{url.port}"
    target = urlunsplit((url.scheme, netloc, url.raw_path.decode(), "", ""))
    host_header = url.netloc.decode()
    return httpx.Request("GET", target, headers={"Host": host_header}, extensions={"sni_hostname": url.host})


async def fetch_image(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> bytes:
    """The image's bytes, following at most MAX_REDIRECTS redirects, each hop checked; bounded in size and time."""
    try:
        async with asyncio.timeout(policy.timeout_s):
            for _ in range(MAX_REDIRECTS + 1):
                target, ip = await checked_address(url, policy)
                response = await client.send(_pinned(target, ip), stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise InvalidRequest(f"fetching the image returned HTTP {response.status_code}")
                    return await _read_bounded(response, policy.max_bytes)
                finally:
                    await response.aclose()
            raise InvalidRequest(f"the image URL redirected more than {MAX_REDIRECTS} times")
    except TimeoutError as exc:
        raise InvalidRequest(f"fetching the image timed out after {policy.timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"the image could not be fetched ({type(exc).__name__})") from exc


async def _read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InvalidRequest(f"the image is larger than {max_bytes} bytes")
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > max_bytes:
            raise InvalidRequest(f"the image is larger than {max_bytes} bytes")
    return bytes(data)
