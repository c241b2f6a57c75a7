"""`mistral-local bundle`: plan, say what it holds, write it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rich.console import Console

from server.bundle.pack import Plan, parse_size, plan, write
from server.bundle.resolve import Target, configured_index
from server.engine.vllm_release import PINNED, supported
from server.errors import ConfigError
from server.settings import Settings


def _summary(p: Plan) -> str:
    t = p.target
    return (
        f"{len(p.wheels)} wheels, {p.size / 2**20:.0f} MiB, for Python {t.python} on {t.platform}: {t.engine}"
        f"{' with ' + ', '.join(t.release.known_pins) if t.release.known_pins else ''}; "
        f"left out ({len(p.left_out)}, the target has them or only they need them): "
        f"{', '.join(p.left_out) or 'nothing'}"
    )


def run_bundle(
    out: Path,
    python: str,
    platform: str,
    stack: str,
    vllm: str | None,
    have: list[str],
    without: list[str],
    part_size: str,
    index_url: str | None,
    dry_run: bool,
) -> Plan:
    console = Console(stderr=True)
    release = supported(vllm or PINNED, "the bundle")
    if stack not in ("gpu", "cpu"):
        raise ConfigError(f"--stack {stack!r}: gpu or cpu")
    target = Target(python, platform, stack, release, tuple(have), index_url or configured_index(), tuple(without))
    chosen = plan(target)
    console.print(_summary(chosen))
    if dry_run:
        for wheel in chosen.wheels:
            print(f"{wheel.filename}  {wheel.size}  sha256:{wheel.sha256}")
        return chosen
    parts = write(chosen, out, parse_size(part_size), Settings().cache_dir / "wheels")
    console.print(f"[green]wrote[/] {len(parts)} part(s) to {out}; on the target: bash {out / 'install.sh'}")
    # The hashes catch damage only: whoever can change the parts can change SHA256SUMS. This digest, compared with
    # the one install.sh prints, over a channel the operator trusts, catches tampering.
    digest = hashlib.sha256((out / "SHA256SUMS").read_bytes()).hexdigest()
    console.print(f"SHA256SUMS digest {digest}: check that install.sh prints the same on the target")
    return chosen
