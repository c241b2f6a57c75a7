"""The layout checks `make lint` runs, fed a breach: each must say what is wrong and fail (a check that has only
ever seen a clean tree has not shown that it checks anything)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def check_structure() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_structure", SCRIPTS / "check_structure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "server"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


CYCLES = {
    "absolute": {"a.py": "import server.b\n", "b.py": "from server.a import x\n"},
    "from-server-import": {"a.py": "from server import b\n", "b.py": "from server import a\n"},
    "relative": {"p/x.py": "from ..q import y\n", "q/y.py": "from ..p import x\n"},
    "relative-in-a-package": {"p/__init__.py": "from .x import f\n", "p/x.py": "from ..q import y\n",
                              "q/y.py": "from ..p import f\n"},
}  # fmt: skip


@pytest.mark.parametrize("name", CYCLES)
def test_an_import_cycle_is_a_breach(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert check_structure().main(tree(tmp_path, CYCLES[name])) == 1
    printed = capsys.readouterr().out
    assert "import cycle between: a, b" in printed or "import cycle between: p, q" in printed


def test_a_long_function_and_a_crowded_root_are_breaches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = check_structure()
    body = "".join(f"    x{i} = {i}\n" for i in range(checks.MAX_FUNCTION_LINES))  # one line more than allowed
    files = {f"m{i}.py": "" for i in range(checks.MAX_ROOT_MODULES)} | {"long.py": f"def f():\n{body}"}
    assert checks.main(tree(tmp_path, files)) == 1
    printed = capsys.readouterr().out
    assert f"function over {checks.MAX_FUNCTION_LINES} lines: server/long.py:1 f: 61 lines" in printed
    assert f"{checks.MAX_ROOT_MODULES + 2} modules at the root of server/" in printed


def test_a_clean_tree_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {"a.py": "from server import b\n", "b.py": "import json\n", "p/__init__.py": "from . import x\n"}
    assert check_structure().main(tree(tmp_path, files | {"p/x.py": "from ..b import y\n"})) == 0
    assert capsys.readouterr().out == ""


def test_a_request_path_over_its_limit_fails_and_names_its_chain() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "request_path.py"), "--quiet", "--most-calls", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BREAKS" in done.stdout and "calls on the chain (at most 4)" in done.stdout
    assert "server/generation/pipeline.py _generate" in done.stdout and "server/fleet/client.py post" in done.stdout
    assert "consulted: " in done.stdout and "access/admission.py" in done.stdout


def request_path() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("request_path", SCRIPTS / "request_path.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_a_chain_that_comes_back_to_a_file_or_runs_long_breaks_the_rules() -> None:
    breaks = request_path().breaks
    chain = [("api.py", "route"), ("dispatch.py", "chat"), ("dispatch.py", "_serve"), ("client.py", "post")]
    assert breaks(chain, most_calls=4, most_files=3) == []  # two calls in one file are one file
    assert breaks(chain, most_calls=3, most_files=3) == ["4 calls on the chain (at most 3)"]
    assert breaks(chain, most_calls=4, most_files=2) == ["3 files on the chain (at most 2)"]
    knot = [("api.py", "route"), ("dispatch.py", "chat"), ("api.py", "helper"), ("client.py", "post")]
    assert breaks(knot, most_calls=9, most_files=9) == ["the chain comes back to a file it left"]
