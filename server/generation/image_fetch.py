"""Fetching remote images under the operator's policy, so a client cannot make the gateway reach what it should not.

- `deny`: no remote images; only `data:` URLs.
- `allowlist`: only the listed hosts (names or addresses), whatever they resolve to.
- `public` (default): any host whose every address is public. Loopback, private, link-local (cloud metadata
  lives there), multicast, reserved, documentation and unspecified addresses are refused, for IPv4 and IPv6, after
  DNS resolution. The special-purpose ranges are listed here (IANA's registries) rather than read from Python's
  `ipaddress` flags alone, whose tables differ between patch releases (6to4 passed on 3.11.7); an IPv4 address
  inside an IPv6 one (mapped, NAT64) is checked as IPv4, and tunnels that embed one (6to4, Teredo) are refused.
Every redirect hop is checked the same way, and the connection goes to the address that was checked (with the
original Host header and TLS server name), so DNS cannot answer differently between check and connect.

Bodies are read as they travel: the fetcher asks for no content encoding and refuses one it did not ask for, so a
few bytes of gzip cannot expand into gigabytes before the size limit sees them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from server.errors import InvalidImage

MAX_REDIRECTS = 5
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    mode: str  # "deny" | "allowlist" | "public"
    allowlist: frozenset[str]
    max_bytes: int
    timeout_s: float


def _nets(kind: str, *cidrs: str) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    return [(kind, ipaddress.ip_network(c)) for c in cidrs]


# IANA's IPv4 and IPv6 special-purpose address registries (RFC 6890 and later), minus the globally reachable few.
SPECIAL_NETWORKS = [
    *_nets("unspecified", "0.0.0.0/8", "::/128"),
    *_nets("loopback", "127.0.0.0/8", "::1/128"),
    *_nets("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    *_nets("link-local (cloud metadata)", "169.254.0.0/16", "fe80::/10"),
    *_nets("multicast", "224.0.0.0/4", "ff00::/8"),
    *_nets("tunnel (embeds an IPv4 address)", "2002::/16", "2001::/32", "192.88.99.0/24", "64:ff9b:1::/48"),
    *_nets("documentation", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
    *_nets("reserved", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "::/96", "100::/64", "2001::/23"),
    *_nets("reserved", "fec0::/10", "5f00::/16"),
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: IpAddress) -> IpAddress:
    """The IPv4 address an IPv6 address stands for when it carries one (mapped, NAT64); else `ip` itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def refusal(ip: IpAddress) -> str | None:
    """Why `ip` may not be fetched under the public policy (None: it may)."""
    ip = _embedded_ipv4(ip)
    for kind, net in SPECIAL_NETWORKS:
        if ip.version == net.version and ip in net:
            return kind
    # Python's own tables as a second opinion: a range this list lacks is still refused if Python knows it.
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
        raise InvalidImage(f"the image host {host} could not be resolved") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def checked_address(url: str, policy: FetchPolicy) -> tuple[httpx.URL, IpAddress]:
    """The URL and the address it may be fetched from; InvalidImage saying why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidImage(f"image URLs must be http(s) or data:image URLs (got {parts.scheme or 'no'} scheme)")
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidImage("the image URL has no host")
    if policy.mode == "deny":
        raise InvalidImage("remote image URLs are disabled on this server; send the image as a data: URL")
    if policy.mode == "allowlist" and host not in policy.allowlist:  # before any DNS query for the name
        raise InvalidImage(f"the image host {host} is not on this server's allowlist")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidImage("the image URL's port is invalid") from exc
    addresses = await resolve(host, port)
    if policy.mode == "allowlist":
        return httpx.URL(url), addresses[0]
    for ip in addresses:
        if (why := refusal(ip)) is not None:
            raise InvalidImage(f"the image host {host} resolves to a {why} address ({ip}); refused")
    return httpx.URL(url), addresses[0]


def _pinned(url: httpx.URL, ip: IpAddress) -> httpx.Request:
    """A request for `url` that connects to `ip`, keeping the Host header and the TLS server name."""
    netloc = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    if url.port is not None:
        netloc += f":{url.port}"
    target = urlunsplit((url.scheme, netloc, url.raw_path.decode(), "", ""))
    headers = {"Host": url.netloc.decode(), "Accept-Encoding": "identity"}
    return httpx.Request("GET", target, headers=headers, extensions={"sni_hostname": url.host})


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
                        raise InvalidImage(f"fetching the image returned HTTP {response.status_code}")
                    return await _read_bounded(response, policy.max_bytes)
                finally:
                    await response.aclose()
            raise InvalidImage(f"the image URL redirected more than {MAX_REDIRECTS} times")
    except TimeoutError as exc:
        raise InvalidImage(f"fetching the image timed out after {policy.timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise InvalidImage(f"the image could not be fetched ({type(exc).__name__})") from exc


async def _read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    """The body as sent, never decoded: a compressed body was not asked for and is refused."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise InvalidImage(f"the image server sent a {encoding!r}-encoded body; images must come unencoded")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InvalidImage(f"the image is larger than {max_bytes} bytes")
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > max_bytes:
            raise InvalidImage(f"the image is larger than {max_bytes} bytes")
    return bytes(data)
