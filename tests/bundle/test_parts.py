"""The offline bundle's pieces that need no index: reading uv's resolution, what is left out, the target's wheel
tags, and the parts with their hashes."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.version import Version

from server.bundle.pack import _Parts, parse_size
from server.bundle.resolve import Pinned, Target, left_out, parse_compiled
from server.bundle.wheels import target_tags
from server.engine.vllm_release import Release
from server.errors import ConfigError

COMPILED = """\
filelock==4.3.1 \\
    --hash=sha256:aa \\
    --hash=sha256:bb
    # via torch, vllm
nvidia-cublas==13.1.0.3 \\
    --hash=sha256:cc
    # via torch, nvidia-cudnn-cu13
nvidia-cudnn-cu13==9.19.0.56 \\
    --hash=sha256:dd
    # via torch
torch==2.11.0 \\
    --hash=sha256:ee
    # via -c constraints.txt, vllm
transformers==5.16.1 \\
    --hash=sha256:ff
    # via -r requirements.in, vllm
vllm==0.22.1 \\
    --hash=sha256:11
    # via -r requirements.in
"""


def test_uvs_resolution_is_read_with_hashes_and_parents() -> None:
    pinned = {p.name: p for p in parse_compiled(COMPILED)}
    assert pinned["filelock"] == Pinned("filelock", "4.3.1", frozenset({"aa", "bb"}), frozenset({"torch", "vllm"}))
    assert pinned["transformers"].parents == frozenset({"", "vllm"})  # "" marks a direct requirement
    assert pinned["torch"].parents == frozenset({"", "vllm"})


def test_what_only_the_targets_own_packages_need_is_left_out() -> None:
    """torch's CUDA libraries go with torch; what vLLM needs too stays."""
    out = left_out(parse_compiled(COMPILED), {"torch"})
    assert out == {"torch", "nvidia-cudnn-cu13", "nvidia-cublas"}


def test_target_tags() -> None:
    target = Target("3.12", "x86_64-manylinux_2_35", "gpu", Release(Version("0.22.1")), ())
    found = target_tags(target)
    assert found[0] == Tag("cp312", "cp312", "manylinux_2_35_x86_64")
    assert Tag("cp39", "abi3", "manylinux_2_31_x86_64") in found  # an abi3 wheel for an older glibc
    assert Tag("py3", "none", "any") in found
    assert Tag("cp312", "cp312", "manylinux_2_36_x86_64") not in found  # newer than the target's glibc
    assert not any(t.interpreter == "cp313" for t in found)
    with pytest.raises(ConfigError, match="ARCH-manylinux_2_NN"):
        target_tags(Target("3.12", "linux", "gpu", Release(Version("0.22.1")), ()))


def test_have_must_name_versions() -> None:
    with pytest.raises(ConfigError, match="NAME==VERSION"):
        Target("3.12", "x86_64-manylinux_2_35", "gpu", Release(Version("0.22.1")), ("torch>=2",)).have_versions()


@pytest.mark.parametrize(("text", "size"), [("60M", 60 << 20), ("1G", 1 << 30), ("512k", 512 << 10), ("1000", 1000)])
def test_part_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parts_are_at_most_the_size_and_rebuild_the_tar(tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 4000)  # 1,024,000 bytes
    parts = _Parts(tmp_path, 300_000)
    with tarfile.open(fileobj=parts, mode="w|") as tar:
        tar.add(payload, arcname="payload.bin")
    parts.close()
    files = [tmp_path / name for name, _ in parts.sums]
    assert len(files) >= 4 and all(f.stat().st_size <= 300_000 for f in files)
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == [d for _, d in parts.sums]
    (tmp_path / "joined.tar").write_bytes(b"".join(f.read_bytes() for f in files))
    with tarfile.open(tmp_path / "joined.tar") as tar:
        extracted = tar.extractfile("payload.bin")
        assert extracted is not None and extracted.read() == payload.read_bytes()
