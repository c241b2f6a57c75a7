"""The exact engine command for every shipped profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.checkpoint.check import ModelFormat
from server.checkpoint.tiny import write_tiny
from server.engine.launcher import NO_MEDIA_DOMAIN, build_command, tcp_url
from server.engine.profiles import Profile, available_profiles, load_profile
from server.engine.vllm_release import PINNED_RELEASE
from server.errors import ConfigError
from server.serve.engine_choice import engine_command
from server.settings import Settings

NAMES = ["mistralai/mistral-small-3.1-24b-instruct", "mistralai/mistral-small-3.1-24b-instruct-2503"]


def flag(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("name", available_profiles())
def test_every_shipped_profile_builds_the_official_command(name: str) -> None:
    profile = load_profile(name)
    url = "unix:/run/private/engine.sock"
    cmd = build_command(
        profile,
        Path("/models/m"),
        ModelFormat.MISTRAL,
        NAMES,
        url=url,
        api_key="k" * 43,
        release=PINNED_RELEASE,
        python="/venv/bin/python",
    )
    argv = cmd.argv
    assert argv[:3] == ("/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server")
    assert flag(argv, "--model") == "/models/m"
    for f in ("--tokenizer-mode", "--config-format", "--load-format", "--tool-call-parser"):
        assert flag(argv, f) == "mistral"
    assert "--enable-auto-tool-choice" in argv
    i = argv.index("--served-model-name")
    assert list(argv[i + 1 : i + 3]) == NAMES
    # A Unix socket, never a TCP port (vLLM's key does not cover every route; a port is open to local users).
    assert flag(argv, "--uds") == "/run/private/engine.sock"
    assert "--host" not in argv and "--port" not in argv
    assert flag(argv, "--tensor-parallel-size") == str(profile.tensor_parallel_size)
    assert flag(argv, "--max-model-len") == str(profile.max_model_len)
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": profile.images_per_prompt}
    assert ("--enforce-eager" in argv) == profile.enforce_eager
    # The key is secret: in the environment, never on the command line (visible to every local user).
    assert cmd.env["VLLM_API_KEY"] == "k" * 43
    assert not any("k" * 43 in a for a in argv)
    assert "--api-key" not in argv
    # Nothing leaves the machine.
    assert cmd.env["VLLM_NO_USAGE_STATS"] == "1"
    assert cmd.env["HF_HUB_OFFLINE"] == "1"
    # The engine fetches no media itself: only from a name that never resolves, and follows no redirect.
    assert flag(argv, "--allowed-media-domains") == NO_MEDIA_DOMAIN == "media-fetching-disabled.invalid"
    assert cmd.env["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] == "0"
    assert cmd.url == url


def test_cpu_tiny_exact_argv() -> None:
    cmd = build_command(
        load_profile("cpu-tiny"),
        Path("/m"),
        ModelFormat.MISTRAL,
        NAMES[:1],
        url=tcp_url(1),
        api_key="k",
        release=PINNED_RELEASE,
        python="py",
    )
    assert cmd.argv == (
        "py",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/m",
        "--tokenizer-mode",
        "mistral",
        "--config-format",
        "mistral",
        "--load-format",
        "mistral",
        "--tool-call-parser",
        "mistral",
        "--enable-auto-tool-choice",
        "--enable-prompt-tokens-details",
        "--allowed-media-domains",
        "media-fetching-disabled.invalid",
        "--enable-log-requests",
        "--scheduling-policy",
        "priority",
        "--served-model-name",
        NAMES[0],
        "--host",
        "127.0.0.1",
        "--port",
        "1",
        "--tensor-parallel-size",
        "1",
        "--pipeline-parallel-size",
        "1",
        "--data-parallel-size",
        "1",
        "--max-model-len",
        "4096",
        "--limit-mm-per-prompt",
        '{"image": 4}',
        "--enable-prefix-caching",
        "--max-num-seqs",
        "32",
        "--enforce-eager",
        "--structured-outputs-config",
        '{"backend":"xgrammar","disable_any_whitespace":true}',
    )
    assert cmd.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in cmd.env


def test_tp2_binds_one_core_per_rank() -> None:
    cmd = build_command(
        load_profile("cpu-tiny-tp2"),
        Path("/m"),
        ModelFormat.MISTRAL,
        NAMES,
        url=tcp_url(1),
        api_key="k",
        release=PINNED_RELEASE,
    )
    assert flag(cmd.argv, "--tensor-parallel-size") == "2"
    assert cmd.env["VLLM_CPU_OMP_THREADS_BIND"] == "0|1"


def test_gpu_profile_fields_become_flags() -> None:
    profile = Profile(
        name="x",
        device="cuda",
        max_model_len=32768,
        gpu_memory_utilization=0.9,
        kv_cache_dtype="fp8",
        quantization="fp8",
        max_num_batched_tokens=8192,
        enable_prefix_caching=False,
        extra_args=("--mm-encoder-tp-mode", "data"),
    )
    argv = build_command(
        profile, Path("/m"), ModelFormat.MISTRAL, NAMES, url=tcp_url(1), api_key="k", release=PINNED_RELEASE
    ).argv
    assert flag(argv, "--gpu-memory-utilization") == "0.9"
    assert flag(argv, "--kv-cache-dtype") == "fp8"
    assert flag(argv, "--quantization") == "fp8"
    assert flag(argv, "--max-num-batched-tokens") == "8192"
    assert "--no-enable-prefix-caching" in argv
    assert argv[-2:] == ("--mm-encoder-tp-mode", "data")


def test_multi_node_profile_uses_ray_and_pipeline_parallel() -> None:
    profile = Profile(
        name="x", device="cuda", max_model_len=32768, tensor_parallel_size=4, pipeline_parallel_size=2,
        distributed_executor_backend="ray",
    )  # fmt: skip
    argv = build_command(
        profile, Path("/m"), ModelFormat.MISTRAL, NAMES, url=tcp_url(1), api_key="k", release=PINNED_RELEASE
    ).argv
    assert (flag(argv, "--tensor-parallel-size"), flag(argv, "--pipeline-parallel-size")) == ("4", "2")
    assert flag(argv, "--distributed-executor-backend") == "ray"
    assert flag(argv, "--data-parallel-size") == "1"


def test_the_hf_layout_is_served_with_the_mistral_config_over_its_shards() -> None:
    """mistral-common's tokenizer and the Mistral-native config (a view's params.json), the HF shards as
    safetensors; random weights for qualification as with the native layout."""
    for random_weights, load in ((False, "safetensors"), (True, "dummy")):
        argv = build_command(
            load_profile("cpu-tiny"), Path("/hf"), ModelFormat.HF, NAMES, url=tcp_url(1), api_key="k",
            release=PINNED_RELEASE, random_weights=random_weights,
        ).argv  # fmt: skip
        formats = [flag(argv, f) for f in ("--tokenizer-mode", "--config-format", "--load-format")]
        assert formats == ["mistral", "mistral", load]


def test_a_reasoning_model_gets_the_reasoning_parser_and_the_budget_processor(tmp_path: Path) -> None:
    """Chosen from the directory's tokenizer ([THINK] among its special tokens: Magistral), not from a flag."""
    settings = Settings(cache_dir=tmp_path)
    magistral = write_tiny(tmp_path / "magistral", release="magistral")
    small_32 = write_tiny(tmp_path / "small-32", release="3.2")
    argv = engine_command(settings, magistral, load_profile("cpu-tiny"), tcp_url(1), PINNED_RELEASE).argv
    assert flag(argv, "--reasoning-parser") == "mistral"
    assert flag(argv, "--logits-processors") == "server.engine.think_budget:ThinkBudget"
    plain = engine_command(settings, small_32, load_profile("cpu-tiny"), tcp_url(1), PINNED_RELEASE).argv
    assert "--reasoning-parser" not in plain and "--logits-processors" not in plain


def test_unknown_and_invalid_profiles(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shipped profiles: a10-x1-int4, a100-40gb-x2, .*cpu-tiny, "):
        load_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndevice: cpu\nmax_model_len: 4096\ntensor_paralel_size: 2\n")
    with pytest.raises(ConfigError, match="tensor_paralel_size"):
        load_profile(str(bad))
