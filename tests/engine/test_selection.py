"""What `serve` runs without --model: the tiny checkpoint on cpu-tiny without a GPU, a clear hint with one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.engine.hardware import has_nvidia_gpu
from server.engine.selection import choose_model
from server.errors import ConfigError
from server.settings import Settings


def fake_nvidia_smi(directory: Path, output: str, code: int = 0) -> None:
    """Stands in for the driver's tool (this machine has no GPU): prints what `nvidia-smi -L` prints."""
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_no_gpu_serves_the_tiny_checkpoint(tiny_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    assert not has_nvidia_gpu()
    model, profile = choose_model(Settings(cache_dir=tiny_model.parent))
    assert model == tiny_model
    assert profile.name == "cpu-tiny"


def test_gpu_without_weights_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert has_nvidia_gpu()
    with pytest.raises(ConfigError, match=r"Mistral-Small-3.1-24B-Instruct-2503 \(params.json"):
        choose_model(Settings(cache_dir=tmp_path))


def test_a_failing_driver_is_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", 9)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert not has_nvidia_gpu()


def test_a_model_needs_a_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--profile is required"):
        choose_model(Settings(model=tmp_path))
