"""Run `mistral-local serve` as a real subprocess for tests, the way a user runs it."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from server.serving import free_port

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("MISTRAL_LOCAL_CACHE_DIR", REPO / ".cache"))
# What the tests download (wheels for the bundle tests, other vLLM releases' Python files): kept outside the clone,
# so a fresh clone's run downloads nothing a run before it on this machine already has. Content-addressed or
# versioned, so nothing in it depends on which run left it.
DOWNLOADS = Path(os.environ.get("MISTRAL_LOCAL_TEST_DOWNLOADS", Path.home() / ".cache" / "mistral-local-tests"))
OUTPUT_DIR = REPO / "test-output"
# A cpu-tiny engine is ready in 60-150 s on a busy 2-core machine; past this its test fails. Once one start has run
# out of time, every later one in the run fails at once: a hung engine costs a run one wait, not one per start.
START_TIMEOUT_S = 240.0
_timed_out: list[str] = []
ENGINE_KEY = secrets.token_urlsafe(24)  # the session engine's (tests/conftest.py), for tests that call it directly


@dataclass
class Gateway:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    engine_port: int | None = None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def tree(self) -> list[psutil.Process]:
        """The gateway and every process under it (the reaper, vLLM's API server, engine core, workers)."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def engine_api_server(self) -> psutil.Process:
        for p in self.tree():
            if p.cmdline()[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]:
                return p
        raise AssertionError("no vLLM API server under the gateway")

    def wait_ready(
        self, timeout_s: float = START_TIMEOUT_S, headers: dict[str, str] | None = None
    ) -> dict[str, object]:
        if _timed_out:
            raise AssertionError(f"not waited for: {_timed_out[0]}'s engine did not start in time earlier in this run")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/health/ready", headers=headers, timeout=5)
                if r.status_code == 200:
                    body: dict[str, object] = r.json()
                    return body
            except httpx.HTTPError:
                pass
            time.sleep(1)
        _timed_out.append(self.log_path.stem)
        raise AssertionError(f"gateway not ready after {timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_gateway(name: str, *args: str, env: dict[str, str] | None = None) -> Gateway:
    """Start `mistral-local serve ARGS` on a free port; the log goes to test-output/NAME.log."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    log_path = OUTPUT_DIR / f"{name}.log"
    port = free_port()
    full_env = os.environ | {"MISTRAL_LOCAL_CACHE_DIR": str(CACHE_DIR)} | (env or {})
    cmd = [sys.executable, "-m", "server", "serve", "--port", str(port), *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO, start_new_session=True
        )
    return Gateway(url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """The processes still alive after `timeout_s`."""
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def private_dirs(procs: list[psutil.Process]) -> set[Path]:
    """The private folders of these processes (an engine's, a gateway's workers' run folder): what their SIGKILL
    leaves in /tmp, as a crash would, for the test to remove after it."""
    found: set[Path] = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            for folder in (env.get("TMPDIR"), env.get("PROMETHEUS_MULTIPROC_DIR")):
                path = Path(folder or "/")
                found |= {p for p in (path, path.parent) if p.name.startswith("mistral-local-")}
    return found


@contextmanager
def attached_gateway(
    name: str, session: Gateway, engine_key: str, env: dict[str, str], headers: dict[str, str] | None = None
) -> Iterator[Gateway]:
    """A second gateway, with its own settings, attached to the session gateway's engine (no engine start)."""
    url = f"http://127.0.0.1:{session.engine_port}"
    gw = start_gateway(name, "--engine-url", url, env={"MISTRAL_LOCAL_ENGINE_API_KEY": engine_key, **env})
    try:
        gw.wait_ready(timeout_s=60, headers=headers)
        yield gw
    finally:
        gw.stop()
