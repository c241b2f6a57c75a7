"""What carries a request from its route to the engine client, and what it consults on the way: a gateway (one
process, keys off) in front of the synthetic engine, one request of each kind, every Python call in the gateway's
thread recorded from the route's function until the engine client's. docs/architecture.md quotes it.

The chain is the calls on the stack when the engine client is called: each function that carries the request, in
order, from the route's. That is what this protects: a newcomer follows those calls, so the chain may hold at most
--most-calls functions (merging files does not shorten it) in at most --most-files files, and enters each file once
(a chain that leaves a file and comes back to it is a knot). The files the request consults (entered, then left:
the catalogue, limits, the payload builder, admission, the record) are listed, not bounded.

    python scripts/request_path.py           # each path's chain and consulted files; exits 1 if a chain breaks a rule
    python scripts/request_path.py --quiet   # one line per path; the details only of a path that breaks one
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn
from aiohttp import web

from server.app import create_app
from server.bench.synthetic_engine import app as synthetic_app
from server.engine.attached import AttachedEngine
from server.serving import free_port
from server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERVER = str(REPO / "server")
ENGINE_CLIENT = str(REPO / "server" / "fleet" / "client.py")
ROUTES = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
    "chat, streamed": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True},
    ),
    "completion": ("/v1/completions", {"prompt": "hi", "max_tokens": 4}),
}


ROUTE_FUNCTIONS = {"chat_completions", "completions"}


class PathRecorder:
    """The server files entered, in order, from the route's function until the engine client, and the chain of
    calls on the stack when it is entered, once per `arm`."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.chain: list[tuple[str, str]] = []  # (file, function), from the route's function to the engine client's
        self.armed = self.recording = False

    def arm(self) -> None:
        self.files, self.chain, self.armed = [], [], True

    def __call__(self, frame: FrameType, event: str, _: Any) -> None:
        if event != "call":
            return
        name = frame.f_code.co_filename
        if not name.startswith(SERVER):
            return
        if self.armed and frame.f_code.co_name in ROUTE_FUNCTIONS and "/server/api/" in name:
            self.armed, self.recording = False, True
        if not self.recording:
            return
        if not self.files or self.files[-1] != name:
            self.files.append(name)
        if name == ENGINE_CLIENT:
            self.recording = False
            self.chain = _chain(frame)


def _chain(frame: FrameType | None) -> list[tuple[str, str]]:
    """The server functions on the stack, outermost first, from the route's function down to `frame`."""
    calls: list[tuple[str, str]] = []
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(SERVER):
            calls.append((name, frame.f_code.co_name))
            if frame.f_code.co_name in ROUTE_FUNCTIONS and "/server/api/" in name:
                break
        frame = frame.f_back
    return calls[::-1]


def breaks(chain: list[tuple[str, str]], most_calls: int, most_files: int) -> list[str]:
    """The rules a chain breaks, said."""
    files = [name for name, _ in chain]
    runs = [name for i, name in enumerate(files) if i == 0 or files[i - 1] != name]
    found = []
    if len(chain) > most_calls:
        found.append(f"{len(chain)} calls on the chain (at most {most_calls})")
    if len(runs) > most_files:
        found.append(f"{len(runs)} files on the chain (at most {most_files})")
    if len(runs) != len(set(runs)):
        found.append("the chain comes back to a file it left")
    return found


@contextmanager
def gateway(engine_port: int, recorder: PathRecorder, cache_dir: Path) -> Iterator[str]:
    settings = Settings(cache_dir=cache_dir, api_keys=[])
    engine = AttachedEngine(f"http://127.0.0.1:{engine_port}", "", settings.model_id, start_timeout_s=30)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), port=port, log_config=None))

    def run() -> None:
        sys.setprofile(recorder)
        asyncio.run(server.serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--most-calls", type=int, default=10, help="the most functions on a chain")
    parser.add_argument("--most-files", type=int, default=5, help="the most files on a chain")
    parser.add_argument("--quiet", action="store_true", help="the details only of a path that breaks a rule")
    options = parser.parse_args()
    engine_port = free_port()
    model = Settings().model_id
    threading.Thread(target=lambda: asyncio.run(_serve_engine(engine_port, model)), daemon=True).start()
    recorder = PathRecorder()
    over = False
    with (
        tempfile.TemporaryDirectory(prefix="request-path-") as cache,
        gateway(engine_port, recorder, Path(cache)) as url,
    ):
        for kind, (route, body) in ROUTES.items():
            recorder.arm()
            httpx.post(f"{url}{route}", json=body, timeout=30).raise_for_status()
            chain = recorder.chain
            broken = breaks(chain, options.most_calls, options.most_files)
            over |= bool(broken)
            carriers = list(dict.fromkeys(name for name, _ in chain))
            consulted = [name for name in dict.fromkeys(recorder.files) if name not in carriers]
            print(
                f"{kind}: {len(chain)} calls in {len(carriers)} files carry it to the engine client, "
                f"{len(consulted)} files consulted" + (f"; BREAKS: {', '.join(broken)}" if broken else "")
            )
            if broken or not options.quiet:
                print("\n".join(f"    {Path(name).relative_to(REPO)} {function}" for name, function in chain))
                print("  consulted: " + ", ".join(str(Path(name).relative_to(SERVER)) for name in consulted))
    return 1 if over else 0


async def _serve_engine(port: int, model: str) -> None:
    runner = web.AppRunner(synthetic_app(model, 4, 0.001))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
