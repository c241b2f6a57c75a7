"""Folders for what in-process gateways keep (their cache, records, keys), all under one folder that goes when the
test run's interpreter exits: made by helpers without a `tmp_path`, they were left in /tmp by the thousand."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="mistral-local-tests-"))
atexit.register(shutil.rmtree, _ROOT, True)


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_ROOT))
