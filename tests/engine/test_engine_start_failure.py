"""A real engine that can never start: `serve` tries the configured number of times, then exits with status 3 and
vLLM's own reason in words an operator can act on, instead of restarting it forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from server.engine.profiles import load_profile
from server.serving import free_port
from tests.support.gateway_process import CACHE_DIR, REPO

pytestmark = pytest.mark.engine


def test_an_engine_out_of_kv_cache_memory_ends_serve_with_the_diagnosis(tmp_path: Path) -> None:
    """4M tokens of context in 1 GiB of KV cache: vLLM refuses at start (allowed past the model's positions, so the
    memory check is what fails, as a too-long context does on a GPU). One attempt: that the operator's number of
    attempts is kept is tests/engine/test_supervisor.py's, on an engine that fails in a second, not 60."""
    profile = load_profile("cpu-tiny").model_copy(update={"name": "cpu-tiny-huge-context", "max_model_len": 4_000_000})
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json")))
    env = os.environ | {
        "MISTRAL_LOCAL_CACHE_DIR": str(CACHE_DIR),
        "MISTRAL_LOCAL_ENGINE_START_ATTEMPTS": "1",
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--profile", str(path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the engine ran out of memory for its KV cache with profile cpu-tiny-huge-context")
    assert "vLLM estimates a context of" in last
    assert done.stderr.count("engine start ") == 1  # the one try asked for, then no more
