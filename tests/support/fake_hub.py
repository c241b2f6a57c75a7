"""A Hugging Face Hub stand-in on loopback (this machine has no internet): the two routes `snapshot_download`
uses, answering as the Hub does, including its gated / not-found errors. Point HF_ENDPOINT at it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.loopback_http import serve_http

SHA = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    def __init__(self, repos: dict[str, Path | list[str]], gated: set[str]) -> None:
        self.repos = repos  # repo id -> directory served, or a bare file list (info only)
        self.gated = gated
        # Each repository's commit: SHA for the first, another for each other (huggingface_hub caches a file
        # listing per commit in the download directory, so two repositories must not share one)
        self.shas = {repo: SHA if i == 0 else hashlib.sha1(repo.encode()).hexdigest() for i, repo in enumerate(repos)}
        self.allowed_token = "hf_granted"
        self.corrupt: set[str] = set()
        self.requests: list[str] = []

    def files(self, repo: str) -> list[str]:
        entry = self.repos[repo]
        return entry if isinstance(entry, list) else sorted(p.name for p in entry.iterdir() if p.is_file())

    def tree_entry(self, repo: str, name: str) -> dict[str, object]:
        """As the Hub lists a file: weights (in LFS) with their SHA-256 and size."""
        entry = self.repos[repo]
        size = (entry / name).stat().st_size if isinstance(entry, Path) else 0
        listed: dict[str, object] = {
            "type": "file",
            "path": name,
            "size": size,
            "oid": hashlib.sha1(name.encode()).hexdigest(),
        }
        if name.endswith(".safetensors") and isinstance(entry, Path):
            listed["lfs"] = {"oid": self.sha256(repo, name), "size": size, "pointerSize": 134}
        return listed

    def sha256(self, repo: str, name: str) -> str:
        entry = self.repos[repo]
        assert isinstance(entry, Path)
        return hashlib.sha256((entry / name).read_bytes()).hexdigest()

    def served(self, repo: str, name: str) -> bytes:
        """A file's bytes as sent: those of `corrupt` files with one byte flipped, as a bad transfer or disk would."""
        entry = self.repos[repo]
        assert isinstance(entry, Path)
        data = (entry / name).read_bytes()
        if name in self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return data


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _repo(self, parts: list[str]) -> str | None:
            repo = "/".join(parts[:2])
            if repo not in hub.repos:
                self._error(401, "RepoNotFound")  # the Hub answers 401 so private repositories stay hidden
                return None
            if repo in hub.gated and self.headers.get("authorization") != f"Bearer {hub.allowed_token}":
                self._error(403 if self.headers.get("authorization") else 401, "GatedRepo")
                return None
            return repo

        def _file(self, head: bool) -> None:
            hub.requests.append(self.path)
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] == ["api", "models"]:
                repo = self._repo(parts[2:4])
                if repo is None:
                    return
                if parts[4:5] == ["revision"] and parts[5] not in ("main", hub.shas[repo]):
                    self._error(404, "RevisionNotFound")
                    return
                if parts[4:5] == ["tree"]:
                    body = json.dumps([hub.tree_entry(repo, f) for f in hub.files(repo)])
                else:
                    siblings = [{"rfilename": f} for f in hub.files(repo)]
                    body = json.dumps({"id": repo, "sha": hub.shas[repo], "siblings": siblings})
                self._send(body.encode(), "application/json", head)
                return
            repo = self._repo(parts[:2])
            if repo is None:
                return
            assert parts[2] == "resolve"
            name = "/".join(parts[4:])
            data = hub.served(repo, name)
            etag = hub.sha256(repo, name)  # the Hub's: that of the file it holds
            self._send(data, "application/octet-stream", head, etag=etag, commit=hub.shas[repo])

        def _send(self, data: bytes, kind: str, head: bool, etag: str | None = None, commit: str = SHA) -> None:
            start = 0
            ranged = self.headers.get("range", "")
            if ranged.startswith("bytes=") and not head:
                start = int(ranged[6:].split("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("X-Repo-Commit", commit)
            if etag:
                self.send_header("ETag", f'"{etag}"')
            self.end_headers()
            if not head:
                self.wfile.write(data[start:])

        def do_GET(self) -> None:
            self._file(head=False)

        def do_HEAD(self) -> None:
            self._file(head=True)

    return Handler


@contextmanager
def serve_hub(hub: Hub) -> Iterator[str]:
    with serve_http(_handler(hub)) as url:
        yield url
