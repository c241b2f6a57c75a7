"""Turn (profile, model directory) into the exact vLLM engine command, and the environment it runs in."""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from server.checkpoint.check import ModelFormat
from server.engine.address import socket_path
from server.engine.profiles import Profile
from server.engine.vllm_release import Release

ENGINE_HOST = "127.0.0.1"  # with a fixed port: loopback only (by default the engine is on a Unix socket)

# Nothing leaves the machine: no usage statistics to vLLM's collector, no Hugging Face Hub look-ups, no media
# fetched by the engine (and no redirects followed if it ever tried).
PRIVATE_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_MEDIA_URL_ALLOW_REDIRECTS": "0",
    # At DEBUG, vLLM's request log (--enable-log-requests) writes prompts.
    "VLLM_LOGGING_LEVEL": "INFO",
}
# The engine fetches image URLs itself, with no address policy: it may fetch only from this name, which the DNS
# never resolves (RFC 2606), so every image must reach it as a data: URL the gateway made (server/generation/images.py).
NO_MEDIA_DOMAIN = "media-fetching-disabled.invalid"


@dataclass(frozen=True)
class EngineCommand:
    argv: tuple[str, ...]
    env: dict[str, str]  # added to the gateway's environment
    url: str  # where it listens: unix:PATH, or http://127.0.0.1:PORT (server/engine/address.py)
    api_key: str


def tcp_url(port: int, host: str = ENGINE_HOST) -> str:
    """`host`: loopback, unless an engine of a fleet listens for a gateway on another node (`mistral-local engine`)."""
    return f"http://{host}:{port}"


def _listen_flags(url: str) -> list[str]:
    path = socket_path(url)
    if path is not None:
        return ["--uds", str(path)]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return ["--host", host.strip("[]"), "--port", port]


def new_api_key() -> str:
    return secrets.token_urlsafe(32)


def _format_flags(fmt: ModelFormat, random_weights: bool) -> list[str]:
    """The tokenizer, config and load formats for the directory's layout: the Mistral-native config and tokenizer
    always, all three together (the tokenizer flag alone loads, then fails: vllm#16681), over the native weights
    file or the Hugging Face shards (server/checkpoint/hf_layout.py says why). "dummy": random weights of the
    config's shape, for qualification without a download."""
    load = "dummy" if random_weights else ("mistral" if fmt is ModelFormat.MISTRAL else "safetensors")
    return ["--tokenizer-mode", "mistral", "--config-format", "mistral", "--load-format", load]


def _profile_flags(p: Profile) -> list[str]:
    flags = [
        "--tensor-parallel-size",
        str(p.tensor_parallel_size),
        "--pipeline-parallel-size",
        str(p.pipeline_parallel_size),
        "--data-parallel-size",
        str(p.data_parallel_size),
        "--max-model-len",
        str(p.max_model_len),
        "--limit-mm-per-prompt",
        json.dumps({"image": p.images_per_prompt}),
        "--enable-prefix-caching" if p.enable_prefix_caching else "--no-enable-prefix-caching",
    ]
    optional = {
        "--gpu-memory-utilization": p.gpu_memory_utilization,
        "--quantization": p.quantization,
        "--max-num-seqs": p.max_num_seqs,
        "--max-num-batched-tokens": p.max_num_batched_tokens,
        "--distributed-executor-backend": p.distributed_executor_backend,
    }
    for flag, value in optional.items():
        if value is not None:
            flags += [flag, str(value)]
    if p.kv_cache_dtype != "auto":
        flags += ["--kv-cache-dtype", p.kv_cache_dtype]
    if p.enforce_eager:
        flags.append("--enforce-eager")
    if p.structured_outputs is not None:
        flags += ["--structured-outputs-config", p.structured_outputs.model_dump_json()]
    return flags + list(p.extra_args)


def _profile_env(p: Profile) -> dict[str, str]:
    env = dict(PRIVATE_ENV)
    if p.cpu_kv_cache_space_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(p.cpu_kv_cache_space_gib)
    if p.cpu_omp_threads_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = p.cpu_omp_threads_bind
    return env


THINK_BUDGET_PROCESSOR = "server.engine.think_budget:ThinkBudget"  # imported by the engine, not here (it needs vLLM)
THINK_BUDGET = "mistral_local_think_budget"  # a request's reasoning budget, in its vllm_xargs, for that processor


def build_command(
    profile: Profile,
    model_dir: Path,
    fmt: ModelFormat,
    served_names: list[str],
    *,
    url: str,
    api_key: str,
    release: Release,
    random_weights: bool = False,
    reasoning: bool = False,
    python: str = sys.executable,
) -> EngineCommand:
    """The engine's argv and environment. The API key travels in the environment (VLLM_API_KEY), not argv,
    so other local users cannot read it from the process list."""
    argv = [
        python,
        "-m",
        release.api_server_module,  # a module, not the `vllm` script: vllm-cpu's script fails to start
        "--model",
        str(model_dir),
        *_format_flags(fmt, random_weights),
        # Mistral's tool-call format, and `tool_choice: auto` without a per-request opt-in.
        "--tool-call-parser",
        "mistral",
        "--enable-auto-tool-choice",
        # A reasoning model's [THINK]...[/THINK] as `reasoning`, apart from the answer (and counted in usage), and
        # the reasoning budget vLLM's own does not enforce for Mistral's tokenizer (server/engine/think_budget.py).
        *(("--reasoning-parser", "mistral", "--logits-processors", THINK_BUDGET_PROCESSOR) if reasoning else ()),
        # usage.prompt_tokens_details.cached_tokens: the prefix-cache hits OpenRouter's usage reports.
        "--enable-prompt-tokens-details",
        "--allowed-media-domains",
        NO_MEDIA_DOMAIN,
        # A line per request with the id the gateway sends (X-Request-Id), so the engine's log ties to the
        # gateway's; the sampling parameters on that line are cut by server/engine/output.py.
        "--enable-log-requests",
        # OpenRouter's service tiers (priority, fast, flex) as each request's priority (server/generation/inbound.py).
        "--scheduling-policy",
        "priority",
        "--served-model-name",
        *served_names,
        *_listen_flags(url),
        *_profile_flags(profile),
    ]
    env = _profile_env(profile) | {"VLLM_API_KEY": api_key}
    return EngineCommand(argv=tuple(argv), env=env, url=url, api_key=api_key)
