"""The fronts `mistral-local bench overhead` (server/bench/overhead/run.py) measures against the engine: this gateway,
LiteLLM's proxy, a bare TCP relay, this gateway at an earlier revision (`baseline`: the same code path before a
change, measured in the same run), and this gateway exporting traces to an OTLP sink (`traced`: what tracing costs
when it is on)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

from server.bench.client import Target
from server.serving import free_port

KEY = "overhead-engine-key"
REPO = Path(__file__).resolve().parents[3]  # the checkout: the baseline peer archives a revision of it
CACHE = REPO / ".cache" / "overhead"
# LiteLLM's release current when this benchmark was written, with its `proxy` extra spelled out: the extra also pins
# litellm-proxy and litellm-enterprise builds that not every package index carries, and the proxy runs without them.
LITELLM = ["litellm==1.110.2", "gunicorn>=23.0.0,<24.0", "uvicorn>=0.33.0,<1.0", "uvloop>=0.22.1,<1.0",
           "fastapi>=0.136.3,<1.0", "starlette>=1.0.1,<2.0", "backoff>=2.2.1,<3.0", "rq>=2.7.0,<3.0",
           "orjson>=3.12.0,<4.0", "apscheduler>=3.11.2,<4.0", "fastapi-sso>=0.19.0,<1.0", "pyjwt>=2.13.0,<3.0",
           "python-multipart>=0.0.27,<1.0", "cryptography>=49.0.0,<51.0", "pynacl>=1.6.2,<2.0",
           "websockets>=15.0.1,<16.0", "rich>=13.9.4,<14.0", "semver>=3.0.4,<4", "expression>=5.6.0,<6.0",
           "mcp>=2.3.0,<3", "soundfile>=0.12.1,<1.0"]  # fmt: skip


def target(base_url: str, model: str, key: str, label: str) -> Target:
    """Every side marks its first token at the first chunk with text (see the module's docstring)."""
    return Target(base_url, model, key, label, first_token="content")


@dataclass
class Front:
    """Something between the client and the engine, with the processes whose CPU time is its cost."""

    label: str
    target: Target
    pid: int
    # Which of its child processes count: LiteLLM's workers and the gateway's workers do, the engine does not.
    counts: Callable[[psutil.Process], bool]

    def cpu_seconds(self) -> float:
        root = psutil.Process(self.pid)
        procs = [root, *(p for p in root.children(recursive=True) if self.counts(p))]
        return float(sum(p.cpu_times().user + p.cpu_times().system for p in procs))


def gateway_worker(proc: psutil.Process) -> bool:
    return "server.workers.worker" in " ".join(proc.cmdline())


def wait_until(url: str, what: str, log: Path, proc: subprocess.Popen[bytes], timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what} did not become ready; see {log}")


@contextmanager
def process(
    cmd: list[str], name: str, ready_url: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[int]:
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=os.environ | (env or {}), stdout=out, stderr=out, start_new_session=True, cwd=cwd
        )
    try:
        wait_until(ready_url, name, log, proc)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def gateway_env(engine_url: str | None) -> dict[str, str]:
    env = {
        "MISTRAL_LOCAL_ENGINE_API_KEY": KEY, "MISTRAL_LOCAL_MAX_IN_FLIGHT": "4096", "MISTRAL_LOCAL_MAX_WAITING": "4096",
        "MISTRAL_LOCAL_MAX_TOKENS_IN_FLIGHT": "100000000", "MISTRAL_LOCAL_LOG_FORMAT": "json",
        "MISTRAL_LOCAL_CACHE_DIR": str(CACHE),
    }  # fmt: skip
    return env | ({"MISTRAL_LOCAL_ENGINE_URL": engine_url} if engine_url else {})


@contextmanager
def litellm_proxy(engine: Target) -> Iterator[Front]:
    """LiteLLM's proxy from PyPI, in a virtual environment of its own, routing the model to the same engine."""
    venv = CACHE / "litellm-venv"
    if not (venv / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([venv / "bin" / "pip", "install", "-q", *LITELLM], check=True)
    config = CACHE / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": engine.model,
                        "litellm_params": {"model": f"openai/{engine.model}", "api_base": engine.base_url,
                                           "api_key": KEY},
                    }
                ],
                "litellm_settings": {"telemetry": False, "drop_params": True},
            }
        )
    )  # fmt: skip
    port = free_port()
    # No keys on either front (the gateway here has none either), so neither pays for authentication; loopback only.
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
           "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}  # fmt: skip
    cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    with process(cmd, "litellm", f"http://127.0.0.1:{port}/health/liveliness", env) as pid:
        yield Front(
            "litellm",
            target(f"http://127.0.0.1:{port}/v1", engine.model, "", "litellm"),
            pid,
            counts=lambda _: True,
        )


@contextmanager
def tcp_relay(engine: Target) -> Iterator[Front]:
    """The floor: a byte relay with no HTTP (server/bench/overhead/tcp_relay.py); the engine's key goes through it
    untouched."""
    port, engine_port = free_port(), engine.base_url.split(":")[-1].split("/")[0]
    cmd = [
        sys.executable,
        "-m",
        "server.bench.overhead.tcp_relay",
        "--port",
        str(port),
        "--to",
        f"127.0.0.1:{engine_port}",
    ]
    with process(cmd, "tcp-relay", f"http://127.0.0.1:{port}/health") as pid:
        yield Front(
            "tcp-relay",
            target(f"http://127.0.0.1:{port}/v1", engine.model, KEY, "tcp-relay"),
            pid,
            counts=lambda _: False,
        )


def gateway_cmd(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "server", "serve", "--port", str(port), "--workers", str(workers)]


@contextmanager
def attached_gateway(
    engine: Target, label: str, workers: int, env: dict[str, str], cwd: Path = REPO
) -> Iterator[Front]:
    """A gateway (the code in `cwd`) attached to the engine the main gateway uses."""
    port, engine_url = free_port(), engine.base_url.removesuffix("/v1")
    env = gateway_env(engine_url) | env | {"PYTHONPATH": str(cwd)}
    ready = f"http://127.0.0.1:{port}/health/ready"
    with process(gateway_cmd(port, workers), label, ready, env, cwd) as pid:
        yield Front(label, target(f"http://127.0.0.1:{port}/api/v1", engine.model, "", label), pid, gateway_worker)


@contextmanager
def baseline_gateway(engine: Target, rev: str, workers: int) -> Iterator[Front]:
    """The gateway as it was at `rev` (git archive of that revision, run with this environment's packages)."""
    tree = CACHE / f"baseline-{rev}"
    if not tree.exists():
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        tree.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    with attached_gateway(engine, "baseline", workers, {}, cwd=tree) as front:
        yield front


@contextmanager
def trace_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that takes every export and answers as a collector does (an empty response message)."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def traced_gateway(engine: Target, workers: int) -> Iterator[Front]:
    with trace_sink() as sink, attached_gateway(engine, "traced", workers, {"MISTRAL_LOCAL_OTLP_ENDPOINT": sink}) as f:
        yield f
