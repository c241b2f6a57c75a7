"""Qualification, step by step: a random-weights model of the right shape, `mistral-local serve` on this machine's
profile (the engine on a known loopback port, so it can be measured directly too), start-up read from its log, then
`mistral-local bench` against the engine and the gateway side by side at each concurrency, text and images."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from server.engine.profiles import Profile, load_profile
from server.errors import ConfigError, EngineFailed
from server.planning.hardware import detect
from server.qualify.model import random_weights_model
from server.serve.engine_choice import auto_profile
from server.serving import free_port
from server.settings import OPENROUTER_MODEL_ID

DOCKER_WORKERS = 4  # Dockerfile.cuda's MISTRAL_LOCAL_WORKERS (tests/test_dockerfile.py holds them equal)
READY_TIMEOUT_S = 900.0
# Admission must not be what limits a sweep to 256 streams: every request is let in, and the engine queues.
OPEN_ADMISSION = {
    "MISTRAL_LOCAL_MAX_IN_FLIGHT": "4096",
    "MISTRAL_LOCAL_MAX_WAITING": "4096",
    "MISTRAL_LOCAL_MAX_TOKENS_IN_FLIGHT": str(10**9),
}


@dataclass(frozen=True)
class Workload:
    """What each measurement sends: prompt and answer lengths, and requests per concurrency."""

    input_len: int
    output_len: int
    prompts: dict[int, int]  # concurrency -> requests per target (over every round)
    image_concurrency: int
    image_prompts: int
    rounds: int = 2


GPU_WORKLOAD = Workload(1024, 128, {1: 8, 16: 64, 64: 192, 256: 512}, image_concurrency=16, image_prompts=64)
CPU_WORKLOAD = Workload(256, 32, {1: 4, 4: 8}, image_concurrency=2, image_prompts=4)


@dataclass
class Session:
    """One qualification run: where it writes, what it serves, and what it found."""

    out: Path
    profile: Profile
    profile_ref: str
    model_dir: Path
    workers: int
    workload: Workload
    engine_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    gateway_port: int = field(default_factory=free_port)
    engine_port: int = field(default_factory=free_port)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def engine_url(self) -> str:
        return f"http://127.0.0.1:{self.engine_port}"


def prepare(profile_ref: str, out: Path, workers: int | None, cache_dir: Path) -> Session:
    """The profile (auto: this machine's GPUs, or the CPU), and a model of its size: the 24B for a GPU profile."""
    gpu = detect().inventory() is not None
    profile = load_profile(profile_ref) if profile_ref != "auto" else None
    full_size = profile.device == "cuda" if profile is not None else gpu
    model_dir = random_weights_model(cache_dir, full_size)
    if profile is None:
        profile = auto_profile(model_dir)
        profile_ref = str(out / "profile.yaml")
        out.mkdir(parents=True, exist_ok=True)
        Path(profile_ref).write_text(json.dumps(profile.model_dump(mode="json")), encoding="utf-8")
    on_gpu = profile.device == "cuda"
    return Session(
        out=out,
        profile=profile,
        profile_ref=profile_ref,
        model_dir=model_dir,
        workers=workers or (DOCKER_WORKERS if on_gpu else 1),
        workload=GPU_WORKLOAD if on_gpu else CPU_WORKLOAD,
    )


def start_gateway(s: Session, cache_dir: Path) -> subprocess.Popen[bytes]:
    s.out.mkdir(parents=True, exist_ok=True)
    env = (
        os.environ
        | OPEN_ADMISSION
        | {
            "MISTRAL_LOCAL_RANDOM_WEIGHTS": "1",
            "MISTRAL_LOCAL_ENGINE_API_KEY": s.engine_key,
            "MISTRAL_LOCAL_CACHE_DIR": str(cache_dir),
            "MISTRAL_LOCAL_LOG_FORMAT": "json",
            "MISTRAL_LOCAL_DB_PATH": str(s.out / "records.sqlite3"),
        }
    )
    cmd = [sys.executable, "-m", "server", "serve", "--model", str(s.model_dir), "--profile", s.profile_ref,
           "--port", str(s.gateway_port), "--engine-port", str(s.engine_port), "--workers", str(s.workers)]  # fmt: skip
    with (s.out / "gateway.log").open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_ready(s: Session, proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if proc.poll() is not None:
            tail = (s.out / "gateway.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise EngineFailed(f"the gateway exited with {proc.returncode} before it was ready: {tail}")
        try:
            if httpx.get(f"{s.gateway_url}/health/ready", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise EngineFailed(f"the engine was not ready after {READY_TIMEOUT_S:.0f} s (log: {s.out / 'gateway.log'})")


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bench(s: Session, name: str, concurrency: int, prompts: int, extra: list[str]) -> list[dict[str, Any]]:
    """`mistral-local bench`, engine (A) against gateway (B), interleaved rounds; its results.json."""
    w, out = s.workload, s.out / "bench" / name
    cmd = [
        sys.executable, "-m", "server", "bench", "--base-url", f"{s.engine_url}/v1", "--label", "engine",
        "--compare", f"{s.gateway_url}/api/v1", "--compare-label", "gateway", "--model", OPENROUTER_MODEL_ID,
        "--max-concurrency", str(concurrency), "--num-prompts", str(prompts), "--rounds", str(w.rounds),
        "--input-len", str(w.input_len), "--output-len", str(w.output_len), "--tokenizer",
        str(s.model_dir / "tekken.json"), "--out", str(out), *extra,
    ]  # fmt: skip
    env = os.environ | {"MISTRAL_LOCAL_BENCH_API_KEY": s.engine_key}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (s.out / "bench" / f"{name}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise ConfigError(f"mistral-local bench ({name}) failed: {done.stderr.strip()[-500:]}")
    results: list[dict[str, Any]] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return results


def measure(s: Session) -> dict[str, Any]:
    """Text at each concurrency of the workload, then images; each as engine and gateway results."""
    text = {c: bench(s, f"text-c{c}", c, n, []) for c, n in s.workload.prompts.items()}
    image = bench(s, "image", s.workload.image_concurrency, s.workload.image_prompts, ["--dataset", "image"])
    return {"text": text, "image": image}
