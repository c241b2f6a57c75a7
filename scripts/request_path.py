"""The files of `server/` a request passes through from its route to the engine client, in order: a gateway (one
process, keys off) in front of the synthetic engine, one request of each kind, every Python call in the gateway's
thread recorded from the route's function until the engine client's. docs/architecture.md quotes it.

    python scripts/request_path.py           # prints each path, and exits 1 if one passes through over --most files
    python scripts/request_path.py --quiet   # the count per path; the files only of a path over --most (make lint)
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
    """The server files entered, in order, from the route's function until the engine client, once per `arm`."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.armed = self.recording = False

    def arm(self) -> None:
        self.files, self.armed = [], True

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


@contextmanager
def gateway(engine_port: int, recorder: PathRecorder) -> Iterator[str]:
    settings = Settings(cache_dir=Path(tempfile.mkdtemp(prefix="path-")), api_keys=[])
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
    parser.add_argument("--most", type=int, default=10, help="the most files a path may pass through")
    parser.add_argument("--quiet", action="store_true", help="list the files only of a path over --most")
    options = parser.parse_args()
    engine_port = free_port()
    model = Settings().model_id
    threading.Thread(target=lambda: asyncio.run(_serve_engine(engine_port, model)), daemon=True).start()
    recorder = PathRecorder()
    over = False
    with gateway(engine_port, recorder) as url:
        for kind, (route, body) in ROUTES.items():
            recorder.arm()
            httpx.post(f"{url}{route}", json=body, timeout=30).raise_for_status()
            distinct = list(dict.fromkeys(recorder.files))
            too_many = len(distinct) > options.most
            over |= too_many
            print(f"{kind}: {len(distinct)} files ({len(recorder.files)} entries) from route to engine client")
            if too_many or not options.quiet:
                print("\n".join(f"    {Path(name).relative_to(REPO)}" for name in recorder.files))
    return 1 if over else 0


async def _serve_engine(port: int, model: str) -> None:
    runner = web.AppRunner(synthetic_app(model, 4, 0.001))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
