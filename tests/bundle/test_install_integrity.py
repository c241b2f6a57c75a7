"""The offline bundle's install.sh against a tampered transfer (security review 2026-12, M3 and M4): a real bundle
(no wheels, the project's source) written by `write`, then installed by the script itself. Only the parts SHA256SUMS
names are unpacked, each read once; what is unpacked belongs to whoever installs, whatever uid built it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.version import Version

from server.bundle.pack import Plan, normalised, write
from server.bundle.resolve import Target
from server.engine.vllm_release import Release

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = Target(PYTHON, "x86_64-manylinux_2_35", "cpu", Release(Version("0.32.0")), ())
    out = tmp_path_factory.mktemp("bundle") / "out"
    write(Plan(target, [], []), out, 1 << 20, tmp_path_factory.mktemp("wheels"))
    return out


def install(bundle: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """Up to pip: a Python that is not the bundle's stops the script right after unpacking."""
    wrong = "/bin/false"
    cmd = ["bash", str(bundle / "install.sh"), "--python", wrong, "--prefix", str(prefix)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def injected_part(path: Path) -> None:
    """The review's part: a tar fragment with no end blocks that adds mistral-local/setup.py, named to sort first."""
    code = b"open('/tmp/pwned', 'w')\n"
    buf = io.BytesIO()
    t = tarfile.TarFile(fileobj=buf, mode="w")
    info = tarfile.TarInfo("mistral-local/setup.py")
    info.size = len(code)
    t.addfile(info, io.BytesIO(code))  # no close(): no end-of-archive blocks
    path.write_bytes(buf.getvalue())


def test_the_archive_is_owned_by_root_with_plain_modes(bundle: Path) -> None:
    data = b"".join(p.read_bytes() for p in sorted(bundle.glob("bundle.tar.part-*")))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert members and all(m.uid == 0 and m.gid == 0 and m.uname == m.gname == "root" for m in members)
    assert all(m.mode in (0o644, 0o755) for m in members)


def test_a_builders_uid_and_modes_do_not_travel(tmp_path: Path) -> None:
    """What `write` packs each entry with: a file of uid 65534, writable by all, goes in as root's 0644."""
    source = tmp_path / "app.py"
    source.write_text("x = 1\n")
    source.chmod(0o666)
    if os.getuid() == 0:
        os.chown(source, 65534, 65534)
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        tar.add(source, arcname="app.py", filter=normalised)
    with tarfile.open(tmp_path / "t.tar") as tar:
        (member,) = tar.getmembers()
    assert (member.uid, member.gid, member.uname, member.gname, member.mode) == (0, 0, "root", "root", 0o644)


def test_a_part_sha256sums_does_not_name_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(bundle), str(copy)], check=True)
    injected_part(copy / "bundle.tar.part-0")
    done = install(copy, tmp_path / "prefix")
    assert done.returncode == 1
    assert "bundle.tar.part-0 is not in SHA256SUMS" in done.stderr
    assert not (tmp_path / "prefix").exists()


def test_sha256sums_naming_another_file_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(bundle), str(copy)], check=True)
    sums = copy / "SHA256SUMS"
    sums.write_text(sums.read_text() + f"{'0' * 64}  ../../etc/passwd\n")
    done = install(copy, tmp_path / "prefix")
    assert done.returncode == 1 and "SHA256SUMS: ../../etc/passwd" in done.stderr
    assert not (tmp_path / "prefix").exists()


def test_an_untampered_bundle_unpacks_owned_by_the_installer(bundle: Path, tmp_path: Path) -> None:
    done = install(bundle, tmp_path / "prefix")
    digest = subprocess.run(["sha256sum", str(bundle / "SHA256SUMS")], capture_output=True, text=True).stdout[:64]
    assert f"install: SHA256SUMS digest {digest}" in done.stdout  # to compare with the builder's, out of band
    app = tmp_path / "prefix" / "bundle" / "mistral-local" / "server" / "app.py"
    assert app.is_file() and app.stat().st_uid == os.getuid() and app.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "prefix" / "bundle" / "mistral-local" / "setup.py").exists()
