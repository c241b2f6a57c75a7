"""A bundle on disk: the target's wheels, a hashed requirements file and this project's source, in one tar cut into
parts of a chosen size, with SHA256SUMS and install.sh beside them.

    OUT/bundle.tar.part-000 …   the parts (cat them in order to get the tar)
    OUT/SHA256SUMS               sha256sum's format, one line per part
    OUT/install.sh               the install step (verifies, unpacks, installs with no index)
    OUT/manifest.json            what is inside and what was left out, for people

Inside the tar: wheels/, requirements.txt (every wheel pinned to its hash), have.txt (what the target must already
have), mistral-local/ (the project's source, installed editable so its configs/ are found, as in the Docker image),
manifest.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from packaging.utils import canonicalize_name

from server.bundle.resolve import Target, compile_requirements, left_out, parse_compiled
from server.bundle.wheels import Wheel, choose, download
from server.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SOURCE = ("server", "configs", "pyproject.toml", "README.md")


@dataclass(frozen=True)
class Plan:
    target: Target
    wheels: list[Wheel]
    left_out: list[str]  # "name==version" the target has, or that only what it has needs

    @property
    def size(self) -> int:
        return sum(w.size for w in self.wheels)


def plan(target: Target) -> Plan:
    _check_checkout()
    pinned = parse_compiled(compile_requirements(target, REPO / "pyproject.toml"))
    out = left_out(pinned, set(target.have_versions()) | {canonicalize_name(n) for n in target.without})
    wheels = choose([p for p in pinned if p.name not in out], target)
    return Plan(target, wheels, sorted(f"{p.name}=={p.version}" for p in pinned if p.name in out))


def _manifest(p: Plan) -> dict[str, object]:
    t = p.target
    return {
        "target": {
            "python": t.python,
            "platform": t.platform,
            "stack": t.stack,
            "engine": t.engine,
            "have": t.have,
            "without": t.without,
        },
        "wheels": [asdict(w) for w in p.wheels],
        "left_out": p.left_out,
    }


def _check_checkout() -> None:
    if not (REPO / "pyproject.toml").is_file():
        raise ConfigError("a bundle is built from the project's source checkout (pyproject.toml beside server/)")


def _staged(p: Plan, cache: Path, staging: Path) -> None:
    download(p.wheels, cache, staging / "wheels")
    lines = [f"{w.package}=={_version(w)} --hash=sha256:{w.sha256}" for w in p.wheels]
    (staging / "requirements.txt").write_text("\n".join(lines) + "\n")
    (staging / "manifest.json").write_text(json.dumps(_manifest(p), indent=2))
    (staging / "have.txt").write_text("".join(f"{spec}\n" for spec in p.target.have))
    for name in SOURCE:
        source, dest = REPO / name, staging / "mistral-local" / name
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)


def _version(wheel: Wheel) -> str:
    return wheel.filename.split("-")[1]


class _Parts(io.RawIOBase):
    """A file that writes itself as numbered parts of at most `size` bytes, hashing each."""

    def __init__(self, out: Path, size: int) -> None:
        self.out, self.size = out, size
        self.sums: list[tuple[str, str]] = []
        self._file: io.BufferedWriter | None = None
        self._written = 0
        self._hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        while view:
            if self._file is None or self._written == self.size:
                self._next()
            assert self._file is not None
            take = view[: self.size - self._written]
            self._file.write(take)
            self._hash.update(take)
            self._written += len(take)
            view = view[len(take) :]
        return len(data)

    def _next(self) -> None:
        self._finish()
        name = f"bundle.tar.part-{len(self.sums):03d}"
        self._file, self._written, self._hash = (self.out / name).open("wb"), 0, hashlib.sha256()
        self.sums.append((name, ""))

    def _finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self.sums[-1] = (self.sums[-1][0], self._hash.hexdigest())

    def close(self) -> None:
        self._finish()
        self._file = None
        super().close()


def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root, no group or other write: whoever built the bundle must not own what root installs from it."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def write(p: Plan, out: Path, part_bytes: int, cache: Path) -> list[Path]:
    """The bundle in `out` (which must be empty or new); the parts written."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise ConfigError(f"{out} is not empty")
    staging = out / ".staging"
    try:
        _staged(p, cache, staging)
        parts = _Parts(out, part_bytes)
        with tarfile.open(fileobj=parts, mode="w|") as tar:
            for entry in sorted(staging.iterdir()):
                tar.add(entry, arcname=entry.name, filter=normalised)
        parts.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (out / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in parts.sums))
    (out / "manifest.json").write_text(json.dumps(_manifest(p), indent=2))
    script = resources.files("server.bundle").joinpath("install.sh").read_text()
    (out / "install.sh").write_text(script.replace("@PYTHON@", p.target.python))
    (out / "install.sh").chmod(0o755)
    return [out / name for name, _ in parts.sums]


def parse_size(text: str) -> int:
    """ "60M", "1G", "500K" or bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)
    except ValueError as exc:
        raise ConfigError(f"--part-size {text!r}: a size such as 60M or 1G") from exc
