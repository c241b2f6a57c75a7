"""The one wheel of each pinned package that installs on the target, from the index's JSON simple API (PEP 691),
downloaded once into a cache and checked against the hashes the resolver accepted. An index or its file host drops a
connection now and then over hundreds of requests, so each request is tried again after a transport failure or a
429/5xx; what still fails is one ConfigError naming the package and the URL."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from packaging import tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from server.bundle.resolve import Pinned, Target
from server.errors import ConfigError

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
PARALLEL = 8
TRIES = 4
BACKOFF_S = 1.0  # before the second try; doubled before each later one
TRANSIENT = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True)
class Wheel:
    package: str
    filename: str
    url: str
    sha256: str
    size: int


def target_tags(target: Target) -> list[tags.Tag]:
    """The target's wheel tags, best first (x86_64-manylinux_2_28 takes manylinux_2_28 down to manylinux1)."""
    arch, _, libc = target.platform.partition("-")
    major, minor = (int(n) for n in target.python.split(".")[:2])
    if not libc.startswith("manylinux_2_"):
        raise ConfigError(f"--platform {target.platform!r}: ARCH-manylinux_2_NN, e.g. x86_64-manylinux_2_28")
    glibc = int(libc.removeprefix("manylinux_2_"))
    platforms = [f"manylinux_2_{g}_{arch}" for g in range(glibc, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return [
        *tags.cpython_tags((major, minor), platforms=platforms),
        *tags.compatible_tags((major, minor), f"cp{major}{minor}", platforms=platforms),
    ]


def _best(files: list[dict[str, object]], pinned: Pinned, ranked: dict[tags.Tag, int]) -> Wheel | None:
    best: tuple[int, Wheel] | None = None
    for f in files:
        filename = str(f["filename"])
        try:
            name, version, _, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue  # an sdist, or not a wheel
        rank = min((ranked[t] for t in wheel_tags if t in ranked), default=None)
        digest = (f.get("hashes") or {}).get("sha256")  # type: ignore[attr-defined]
        if name != pinned.name or str(version) != pinned.version or rank is None or digest not in pinned.hashes:
            continue
        if best is None or rank < best[0]:
            best = (rank, Wheel(pinned.name, filename, str(f["url"]), str(digest), int(f.get("size") or 0)))  # type: ignore[call-overload]
    return best[1] if best else None


def choose(pinned: list[Pinned], target: Target) -> list[Wheel]:
    """A wheel per package; ConfigError naming every package that has none for the target."""
    ranked = {t: i for i, t in enumerate(target_tags(target))}

    def one(p: Pinned) -> Wheel | None:
        return _best(index_files(client, target.index_url, p.name), p, ranked)

    with httpx.Client(timeout=120, follow_redirects=True) as client, ThreadPoolExecutor(PARALLEL) as pool:
        found = list(pool.map(one, pinned))
    missing = [f"{p.name}=={p.version}" for p, w in zip(pinned, found, strict=True) if w is None]
    if missing:
        raise ConfigError(
            f"no wheel for Python {target.python} on {target.platform} of: {', '.join(missing)} (an air-gapped "
            "target cannot build them)"
        )
    return [w for w in found if w is not None]


def index_files(client: httpx.Client, index_url: str, package: str) -> list[dict[str, object]]:
    """The files the index lists for `package` (PEP 691's `files`)."""
    url = f"{index_url.rstrip('/')}/{package}/"

    def page() -> list[dict[str, object]]:
        answer = client.get(url, headers={"Accept": SIMPLE_JSON})
        answer.raise_for_status()
        try:
            files: list[dict[str, object]] = answer.json()["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{package}: {url} is not a JSON simple API page (PEP 691)") from exc
        return files

    return tried(package, url, page)


def download(wheels: list[Wheel], cache: Path, into: Path) -> None:
    """Each wheel into `into`, through `cache` (by hash: a second bundle downloads nothing it already has)."""
    cache.mkdir(parents=True, exist_ok=True)
    into.mkdir(parents=True, exist_ok=True)

    def one(wheel: Wheel) -> None:
        kept = cache / wheel.sha256
        if not kept.exists():
            fetch(client, wheel, kept)
        placed = into / wheel.filename
        placed.unlink(missing_ok=True)
        shutil.copyfile(kept, placed)

    timeout = httpx.Timeout(60, read=600)
    with httpx.Client(timeout=timeout, follow_redirects=True) as client, ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(one, wheels))


def tried(package: str, url: str, call: Callable[[], T]) -> T:
    """`call`, tried again (up to TRIES) while it fails in a way that can pass."""
    for attempt in range(1, TRIES + 1):
        try:
            return call()
        except httpx.HTTPStatusError as exc:
            status = exc.response
            if status.status_code not in TRANSIENT:
                raise ConfigError(f"{package}: {url} answered {status.status_code} {status.reason_phrase}") from exc
            last: Exception = exc
        except httpx.UnsupportedProtocol as exc:
            raise ConfigError(f"{package}: {url}: {exc}") from exc
        except httpx.TransportError as exc:
            last = exc
        if attempt < TRIES:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
    raise ConfigError(f"{package}: {url} failed {TRIES} times; last: {type(last).__name__}: {last}") from last


def fetch(client: httpx.Client, wheel: Wheel, path: Path) -> None:
    """The wheel at `path`, whole and matching its sha256, or nothing there (tried again as the index's pages are)."""
    tried(wheel.package, wheel.url, lambda: _fetch(client, wheel, path))


def _fetch(client: httpx.Client, wheel: Wheel, path: Path) -> None:
    partial = path.with_suffix(".part")
    digest = hashlib.sha256()
    try:
        with client.stream("GET", wheel.url) as answer:
            answer.raise_for_status()
            with partial.open("wb") as out:
                for chunk in answer.iter_bytes(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != wheel.sha256:
            raise ConfigError(f"{wheel.filename}: the download does not match the index's sha256")
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)  # nothing half-written stays in the cache
