"""Shipped profiles cannot drift from the planner: each GPU profile is regenerated and compared byte for byte;
each CPU profile's KV space is checked against its model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.engine.profiles import PROFILES_DIR, available_profiles, load_profile
from server.errors import ConfigError
from server.planning import hardware
from server.planning.cli_plan import _inventory
from server.planning.model_shape import read_shape, reference_shape
from server.planning.profile_writer import plan_for, profile_name, render

GPU_PROFILES = [n for n in available_profiles() if load_profile(n).device == "cuda"]
CPU_PROFILES = [n for n in available_profiles() if load_profile(n).device == "cpu"]
# The list: every one must ship.
REQUIRED = {
    "h100-x1",
    "h100-x2",
    "h200-x1",
    "a100-80gb-x1",
    "a100-40gb-x2",
    "l40s-x1-fp8",
    "l4-x4-fp8",
    "rtx4090-x2-fp8",
    "rtx4090-x1-int4",  # one 24 GB GPU: INT4 W4A16
    "l4-x1-int4",
    "a10-x1-int4",
}


def test_every_required_gpu_profile_ships() -> None:
    assert set(GPU_PROFILES) >= REQUIRED
    assert {"cpu-tiny", "cpu-tiny-tp2", "cpu-24b"} <= set(CPU_PROFILES)


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_gpu_profile_is_what_the_planner_writes(name: str) -> None:
    planned = load_profile(name).planned_for
    assert planned is not None, f"{name} was not written by the planner"
    assert profile_name(planned) == name
    expected = render(plan_for(reference_shape(), planned), name, planned)
    assert (PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8") == expected, (
        f"regenerate with: mistral-local plan --gpu {planned.gpu} --count {planned.count} --weights {planned.weights} "
        f"--write configs/profiles/{name}.yaml"
    )


@pytest.mark.parametrize("name", CPU_PROFILES)
def test_cpu_profile_kv_space_holds_its_context(name: str, tiny_model: Path) -> None:
    profile = load_profile(name)
    shape = reference_shape() if name == "cpu-24b" else read_shape(tiny_model)
    assert profile.cpu_kv_cache_space_gib is not None
    kv_tokens = profile.cpu_kv_cache_space_gib * 2**30 // shape.kv_bytes_per_token("bf16")
    assert kv_tokens >= profile.max_model_len
    assert shape.tokens_per_image < profile.max_model_len  # at least one full-size image fits a prompt


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "mistral-local"), "plan", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, env={"COLUMNS": "200", "PATH": ""}
    )


@pytest.mark.parametrize(("gpu", "context"), [("rtx4090", "max_model_len 45312"), ("l4", "max_model_len 27904")])
def test_one_24_gb_gpu_gets_int4_and_says_why(gpu: str, context: str) -> None:
    """No weights named: the most faithful that fit; on one 24 GB card that is INT4 W4A16, and the plan says
    what each better one lacks."""
    out = run_plan("--gpu", gpu, "--count", "1")
    assert out.returncode == 0, out.stderr
    for expected in (
        "15.0 GB; 15.0 GB per GPU (TP 1 × PP 1)",
        "bf16 passed over",
        "bf16 weights (48.0 GB) leave no room for one 13344-token sequence",
        "fp8 passed over",
        "int8 passed over",
        "int4: the most faithful weights that fit",
        "quality: RedHatAI's -quantized.w4a16 card reports 99.5% of bf16's OpenLLM v1 average",  # what int4 costs
        context,
    ):
        assert expected in out.stdout, expected
    assert "weights of" not in out.stderr


def test_plan_prints_the_arithmetic_and_the_multi_node_commands() -> None:
    out = run_plan("--gpu", "l4", "--count", "2", "--nodes", "2", "--weights", "fp8")
    assert out.returncode == 0, out.stderr
    for expected in (
        "25.8 GB; 6.4 GB per GPU (TP 2 × PP 2)",
        "sequences at 4k / 32k / 128k",
        "decode ceiling",
        "ray start --head --port=6379",
        "ray start --address=HEAD_IP:6379",
        "--pipeline-parallel-size 2",
        "--distributed-executor-backend ray",
        "--quantization fp8",
    ):
        assert expected in out.stdout, expected


def test_plan_for_nodes_a_model_fits_prints_a_fleet_too() -> None:
    out = run_plan("--gpu", "h100", "--count", "2", "--nodes", "3")
    assert out.returncode == 0, out.stderr
    assert "a fleet of 3 engines, one per node (TP 1, DP 2 inside each)" in out.stdout
    assert "mistral-local plan --gpu h100 --count 2 --write node.yaml" in out.stdout
    for node in (1, 2, 3):
        assert f"--profile node.yaml --host NODE{node}_IP --port 8100" in out.stdout
        assert f"{{url: 'http://NODE{node}_IP:8100', api_key_file: node{node}.key}}" in out.stdout
    assert "mistral-local serve --host 0.0.0.0 --keys-file keys.yaml --fleet-file fleet.yaml" in out.stdout
    # Two L4s per node cannot hold the bf16 model: pipeline parallel across nodes only, no fleet.
    assert "a fleet of" not in run_plan("--gpu", "l4", "--count", "2", "--nodes", "2").stdout


def test_plan_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On any machine, a GPU machine too: both probes are hidden (NVML fails to load, nvidia-smi is not on PATH)."""

    def no_nvml() -> list[dict[str, object]]:
        raise ImportError("libnvidia-ml.so.1: cannot open shared object file (hidden by the test)")

    monkeypatch.setattr(hardware, "nvml_records", no_nvml)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no NVIDIA GPU here \(.*\); plan for one with --gpu KEY --count N"):
        _inventory(None, 1, 1, None)
