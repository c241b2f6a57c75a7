"""The control process's worker pool with real worker processes: a worker that cannot start (here: no control
process to connect to) is retried a few times, then the pool reports failure instead of leaving the port unserved."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from server.settings import Settings
from server.workers import control
from server.workers.control import WorkerPool


def test_workers_that_keep_dying_at_start_fail_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(control, "MAX_QUICK_EXITS", 3)

    async def run() -> None:
        pool = WorkerPool(Settings(workers=1, log_level="WARNING"), tmp_path)  # no state server at tmp_path
        pool.start()
        try:
            await asyncio.wait_for(pool.failed.wait(), 120)
        finally:
            await pool.stop()
        assert all(proc.returncode not in (None, 0) for proc in pool.procs.values())

    with caplog.at_level(logging.ERROR, logger="mistral_local.workers"):
        asyncio.run(run())
    assert "gateway worker 0 exited 3 times at start" in caplog.text
