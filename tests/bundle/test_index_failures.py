"""The bundle's talks with the package index, against a real local index that fails on purpose: a dropped
connection, a 503 or a cut-off download is tried again; what keeps failing, or cannot succeed, is one clear error
naming the package and the index, and a failed download leaves nothing half-written in the cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from packaging.version import Version

from server.bundle import wheels
from server.bundle.resolve import Pinned, Target
from server.bundle.wheels import Wheel, choose, download
from server.engine.vllm_release import Release
from server.errors import ConfigError
from tests.support.loopback_http import serve_http

BODY = b"not really a wheel, but its bytes are hashed all the same" * 100
DIGEST = hashlib.sha256(BODY).hexdigest()
FILENAME = "tiny-1.0-py3-none-any.whl"


@dataclass
class Index:
    """What the next requests get: each entry of `faults` is used once, in order ("drop", "cut", "html" or a
    status)."""

    url: str = ""
    faults: list[str | int] = field(default_factory=list)
    served: list[str] = field(default_factory=list)


def _handler(index: Index) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            index.served.append(self.path)
            fault = index.faults.pop(0) if index.faults else None
            if fault == "drop":
                self.close_connection = True
                self.connection.close()
                return
            body = BODY if self.path.endswith(".whl") else self._page()
            if fault == "html":
                body = b"<html><body>PEP 503 only</body></html>"
            if isinstance(fault, int):
                self.send_response(fault)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if fault == "cut" else body)

        def _page(self) -> bytes:
            if not self.path.startswith("/simple/tiny/"):
                return json.dumps({"files": []}).encode()
            url = f"{index.url}/files/{FILENAME}"
            return json.dumps({"files": [{"filename": FILENAME, "url": url, "hashes": {"sha256": DIGEST}}]}).encode()

    return Handler


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    monkeypatch.setattr(wheels, "BACKOFF_S", 0.01)  # the waits between tries, not what is tried
    state = Index()
    with serve_http(_handler(state)) as state.url:
        yield state


def _target(index: Index) -> Target:
    return Target("3.12", "x86_64-manylinux_2_35", "gpu", Release(Version("0.22.1")), (), f"{index.url}/simple")


TINY = Pinned("tiny", "1.0", frozenset({DIGEST}), frozenset({""}))


@pytest.mark.parametrize("faults", [["drop"], [503, "drop", 502]], ids=["dropped", "three-transient"])
def test_the_index_page_is_asked_again_after_a_transient_failure(index: Index, faults: list[str | int]) -> None:
    index.faults = list(faults)
    assert [w.filename for w in choose([TINY], _target(index))] == [FILENAME]
    assert index.served.count("/simple/tiny/") == len(faults) + 1


def test_an_index_that_keeps_failing_is_one_error_naming_the_package_and_the_index(index: Index) -> None:
    index.faults = ["drop"] * wheels.TRIES
    with pytest.raises(ConfigError) as caught:
        choose([TINY], _target(index))
    assert str(caught.value).startswith(f"tiny: {index.url}/simple/tiny/ failed {wheels.TRIES} times; last: ")
    assert index.served.count("/simple/tiny/") == wheels.TRIES


def test_a_package_the_index_does_not_have_is_said_at_once(index: Index) -> None:
    index.faults = [404]
    with pytest.raises(ConfigError, match=rf"^tiny: {index.url}/simple/tiny/ answered 404 Not Found$"):
        choose([TINY], _target(index))
    assert index.served == ["/simple/tiny/"]  # a 404 is an answer, not a hiccup


def test_an_index_without_the_json_api_is_said_at_once(index: Index) -> None:
    index.faults = ["html"]
    with pytest.raises(ConfigError, match=r"simple/tiny/ is not a JSON simple API page \(PEP 691\)$"):
        choose([TINY], _target(index))
    assert index.served == ["/simple/tiny/"]


def _wheel(index: Index) -> Wheel:
    return Wheel("tiny", FILENAME, f"{index.url}/files/{FILENAME}", DIGEST, len(BODY))


def test_a_cut_off_download_is_fetched_again_whole(index: Index, tmp_path: Path) -> None:
    index.faults = ["cut", "drop"]
    download([_wheel(index)], tmp_path / "cache", tmp_path / "into")
    assert (tmp_path / "into" / FILENAME).read_bytes() == BODY
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [DIGEST]
    assert len(index.served) == 3


def test_a_download_that_keeps_failing_leaves_nothing_half_written(index: Index, tmp_path: Path) -> None:
    index.faults = ["cut"] * wheels.TRIES
    with pytest.raises(ConfigError, match=rf"^tiny: {index.url}/files/{FILENAME} failed {wheels.TRIES} times"):
        download([_wheel(index)], tmp_path / "cache", tmp_path / "into")
    assert list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "into" / FILENAME).exists()
