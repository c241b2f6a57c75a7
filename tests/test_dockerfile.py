"""Dockerfile.cuda: its pins are pyproject.toml's, it runs as a non-root user, checks readiness, and its settings
are valid. (hadolint lints it in `make lint`.)"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile.cuda").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]


def only(name: str) -> str:
    (found,) = [args for instr, args in instructions() if instr == name]
    return found


def test_the_base_is_the_pinned_vllm_and_the_rest_comes_from_the_lock() -> None:
    gpu_extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    vllm = next(p for p in gpu_extra if p.startswith("vllm=="))
    assert only("FROM") == f"vllm/vllm-openai:v{vllm.removeprefix('vllm==')}"
    runs = [args for instr, args in instructions() if instr == "RUN"]
    assert "uv export --frozen --no-dev --extra gpu" in runs[0]
    assert "pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.txt" in runs[0]
    assert any("uv.lock" in args for instr, args in instructions() if instr == "COPY")


def test_runs_as_a_non_root_user_with_weights_on_a_volume() -> None:
    assert only("USER") == "1000:1000"
    assert only("VOLUME") == '["/models"]'
    assert only("ENTRYPOINT") == '["mistral-local"]'
    assert only("CMD") == '["serve", "--profile", "auto"]'


def test_healthcheck_asks_for_readiness() -> None:
    check = only("HEALTHCHECK")
    assert "/health/ready" in check and "--start-period" in check


def test_image_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    env = only("ENV")
    for name, value in re.findall(r"(MISTRAL_LOCAL_\w+)=('[^']*'|\S+)", env):
        monkeypatch.setenv(name, value.strip("'"))
    settings = Settings()
    assert settings.host == "0.0.0.0" and settings.profile == "auto"
    assert settings.model == Path("/models")
    assert settings.workers > 1  # GPU servers: more output than one gateway process relays well (docs/performance.md)
    # The health check must reach readiness without a key; nothing else opens up beyond the defaults.
    assert set(settings.public_routes) == set(Settings.model_fields["public_routes"].default) | {"/health/ready"}


def test_build_context_is_small() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignored
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "server", "configs"}


def test_qualification_measures_with_the_images_worker_count() -> None:
    from server.qualify.run import DOCKER_WORKERS

    env = dict(shlex.split(p)[0].split("=", 1) for p in re.findall(r"MISTRAL_LOCAL_WORKERS=\S+", DOCKERFILE))
    assert int(env["MISTRAL_LOCAL_WORKERS"]) == DOCKER_WORKERS
