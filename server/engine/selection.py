"""Which model, which profile and which kind of engine `serve` runs, from the settings and the hardware."""

from __future__ import annotations

import logging
import shutil
import tempfile
from functools import partial
from pathlib import Path

from server.checkpoint.check import check_model
from server.checkpoint.tiny import write_tiny
from server.engine.hardware import has_nvidia_gpu
from server.engine.launcher import EngineCommand, build_command, free_port, new_api_key
from server.engine.profiles import Profile, load_profile
from server.engine.supervisor import AttachedEngine, EngineBase, EngineSupervisor
from server.errors import ConfigError
from server.settings import Settings

log = logging.getLogger("mistral_local")

TINY_DIR_NAME = "tiny-mistral-small-3.1"
WEIGHTS_HINT = (
    "An NVIDIA GPU is present but no model was given. Download the Mistral-native weights of "
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503 (params.json, consolidated.safetensors, tekken.json; the "
    "repository is gated: accept its terms on Hugging Face and set HF_TOKEN), then run "
    "`mistral-local serve --model DIR --profile PROFILE`."
)


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


def choose_model(settings: Settings) -> tuple[Path, Profile]:
    if settings.model is None:
        if has_nvidia_gpu():
            raise ConfigError(WEIGHTS_HINT)
        return tiny_checkpoint(settings.cache_dir), load_profile(settings.profile or "cpu-tiny")
    if settings.profile is None:
        raise ConfigError("--profile is required with --model (see configs/profiles/)")
    return settings.model, load_profile(settings.profile)


def engine_command(settings: Settings, model_dir: Path, profile: Profile) -> EngineCommand:
    report = check_model(model_dir)
    if not report.ok or report.format is None:
        raise ConfigError("the model directory is not usable:\n  " + "\n  ".join(report.problems))
    return build_command(
        profile,
        model_dir,
        report.format,
        settings.served_names,
        port=settings.engine_port or free_port(),
        # A fixed key only when the operator set one (so other gateways can attach); else a new one per start.
        api_key=settings.engine_api_key.get_secret_value() if settings.engine_api_key else new_api_key(),
    )


def build_engine(settings: Settings) -> EngineBase:
    """An attached engine for --engine-url, else a supervisor for the chosen model and profile."""
    if settings.engine_url is not None:
        key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else ""
        return AttachedEngine(
            settings.engine_url, key, settings.model_id, start_timeout_s=settings.engine_start_timeout_s
        )
    model_dir, profile = choose_model(settings)
    engine_command(settings, model_dir, profile)  # fail fast, before the gateway starts
    log.info("serving %s with profile %s", model_dir, profile.name)
    return EngineSupervisor(
        partial(engine_command, settings, model_dir, profile),
        settings.model_id,
        start_timeout_s=settings.engine_start_timeout_s,
    )
