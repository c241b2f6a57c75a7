"""The supported vLLM releases each accept the exact command the gateway builds for every shipped profile, parsed by
that release's own argument parser (its Python code from PyPI: tests/support/vllm_releases.py), and the gateway
refuses a release outside the range at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from server.checkpoint.check import ModelFormat
from server.engine.launcher import NO_MEDIA_DOMAIN, build_command
from server.engine.profiles import Profile, available_profiles, load_profile
from server.engine.vllm_release import LAUNCHER_MODULE, LEGACY_MODULE, PINNED, TESTED, Release, supported
from server.errors import ConfigError
from tests.support.vllm_releases import overlay_env

NAMES = ["mistralai/mistral-small-3.1-24b-instruct", "mistralai/mistral-small-3.1-24b-instruct-2503"]
SOCKET = "/run/private/engine.sock"
HERE = Path(__file__).parent


def argv_for(profile: Profile, release: Release) -> list[str]:
    cmd = build_command(profile, Path("/models/m"), ModelFormat.MISTRAL, NAMES, url=f"unix:{SOCKET}", api_key="k",
                        release=release)  # fmt: skip
    return list(cmd.argv[3:])  # after `python -m MODULE`


def parsed_by(version: str, argvs: list[list[str]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE.parent / "support" / "parse_with_vllm.py"), LEGACY_MODULE, LAUNCHER_MODULE],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=600,
        env=overlay_env(None if version == PINNED else version),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("version", TESTED)
def test_every_profile_parses_as_meant_by_each_tested_release(version: str) -> None:
    release = Release(Version(version))
    profiles = [load_profile(name) for name in available_profiles()]
    result = parsed_by(version, [argv_for(p, release) for p in profiles])
    assert result["version"] == version
    assert result["modules"][release.api_server_module]  # the module the gateway runs exists in this release
    for profile, got in zip(profiles, result["parsed"], strict=True):
        expected = {
            "model": "/models/m",
            "uds": SOCKET,
            "tokenizer_mode": "mistral",
            "config_format": "mistral",
            "load_format": "mistral",
            "tool_call_parser": "mistral",
            "enable_auto_tool_choice": True,
            "enable_prompt_tokens_details": True,
            "allowed_media_domains": [NO_MEDIA_DOMAIN],
            "served_model_name": NAMES,
            "tensor_parallel_size": profile.tensor_parallel_size,
            "pipeline_parallel_size": profile.pipeline_parallel_size,
            "data_parallel_size": profile.data_parallel_size,
            "max_model_len": profile.max_model_len,
            "limit_mm_per_prompt": {"image": profile.images_per_prompt},
            "enable_prefix_caching": profile.enable_prefix_caching,
            "enforce_eager": profile.enforce_eager,
        }
        if profile.max_num_seqs is not None:
            expected["max_num_seqs"] = profile.max_num_seqs
        if profile.gpu_memory_utilization is not None:
            expected["gpu_memory_utilization"] = profile.gpu_memory_utilization
        if profile.quantization is not None:
            expected["quantization"] = profile.quantization
        if profile.kv_cache_dtype != "auto":
            expected["kv_cache_dtype"] = profile.kv_cache_dtype
        if profile.distributed_executor_backend is not None:
            expected["distributed_executor_backend"] = profile.distributed_executor_backend
        assert {k: got[k] for k in expected} == expected, profile.name
        if profile.structured_outputs is not None:
            assert got["structured_outputs_config"]["backend"] == profile.structured_outputs.backend
            disable = profile.structured_outputs.disable_any_whitespace
            assert got["structured_outputs_config"]["disable_any_whitespace"] is disable


def test_the_gateway_runs_each_release_by_its_own_module() -> None:
    assert Release(Version("0.22.1")).api_server_module == LEGACY_MODULE
    assert Release(Version("0.32.0")).api_server_module == LEGACY_MODULE
    assert Release(Version("0.33.0")).api_server_module == LAUNCHER_MODULE  # 0.33 deprecates the old one
    assert Release(Version("0.22.1")).known_pins == ("transformers==5.16.1",)


@pytest.mark.parametrize("version", ["0.21.0", "0.34.0", "1.0.0", "0.10.2"])
def test_a_release_outside_the_range_is_refused_with_what_to_do(version: str) -> None:
    with pytest.raises(ConfigError) as info:
        supported(version, "this machine")
    message = str(info.value)
    assert f"this machine has vLLM {version}" in message
    assert "mistral-local runs on vLLM" in message and "tested: 0.22.1, 0.32.0, 0.33.0" in message


@pytest.mark.parametrize("version", ["0.22.0", "0.22.1", "0.32.0", "0.33.0", "0.33.1", "0.32.0+cpu", "0.33.0rc1"])
def test_releases_inside_the_range_are_taken(version: str) -> None:
    assert supported(version, "x").version == Version(version)


def test_serve_refuses_an_unsupported_release_before_anything_loads(tmp_path: Path) -> None:
    """An installed vLLM 0.21 (its metadata, in front of the real one): `serve` exits 2 at once, saying why."""
    dist = tmp_path / "vllm-0.21.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.21.0\n")
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--profile", "cpu-tiny", "--port", "1"],
        capture_output=True, text=True, timeout=120, env={**overlay_env(None), "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "this machine has vLLM 0.21.0; mistral-local runs on vLLM" in done.stderr
