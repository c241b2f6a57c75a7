"""The engine's private directory (its sockets, vLLM's temporary files: server/engine/address.py) lives exactly as
long as the gateway's engine: made when it starts, never when it is only planned, removed when it stops or, by the
reaper, when the gateway dies without stopping it. Each day of runs left hundreds of them in /tmp before."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from server.engine.address import private_dir, private_socket
from server.engine.diagnosis import Context, installed_version
from server.engine.launcher import EngineCommand
from server.engine.reaper import LIFELINE_ENV, PRIVATE_DIR_ENV
from server.engine.supervisor import Backoff, EngineSupervisor

ENGINE_UP = "import time; print('up', flush=True); time.sleep(600)"


@contextlib.contextmanager
def reaped(engine_program: str, directory: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The reaper running `engine_program`, its engine up; and the write end of its lifeline, the gateway's."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.engine.reaper", sys.executable, "-c", engine_program],
        env=os.environ | {LIFELINE_ENV: str(read_end), PRIVATE_DIR_ENV: str(directory)},
        pass_fds=(read_end,),
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(read_end)
    with proc:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        yield proc, write_end


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    made = tmp_path / "mistral-local-engine-test"
    made.mkdir(mode=0o700)
    (made / "vllm_dist_x").mkdir()
    return made


def test_a_gateway_that_dies_takes_the_engine_and_its_directory(directory: Path) -> None:
    with reaped(ENGINE_UP, directory) as (proc, lifeline):
        (engine,) = psutil.Process(proc.pid).children()
        os.close(lifeline)  # what the kernel does when the gateway dies, SIGKILL included
        proc.wait(timeout=60)
    assert not directory.exists()
    assert not engine.is_running()


def test_an_engine_that_exits_by_itself_keeps_the_directory_for_the_next(directory: Path) -> None:
    with reaped("import sys; print('up', flush=True); sys.exit(3)", directory) as (proc, lifeline):
        try:
            assert proc.wait(timeout=60) == 3
            assert directory.is_dir()
        finally:
            os.close(lifeline)


def supervised(url: str, told: Path) -> EngineSupervisor:
    """A supervisor whose engine writes where vLLM would put its sockets and temporary files into `told`."""
    program = (
        "import os, time\n"
        f"open({str(told)!r}, 'w').write(os.environ['VLLM_RPC_BASE_PATH'] + ' ' + os.environ['TMPDIR'])\n"
        "time.sleep(600)\n"
    )

    def command() -> EngineCommand:
        return EngineCommand(argv=(sys.executable, "-c", program), env={}, url=url, api_key="k")

    context = Context("cpu-tiny", "cpu", "/models/tiny", installed_version)
    return EngineSupervisor(command, url, "m", context, start_timeout_s=60, backoff=Backoff(first_s=0.05))


def told_directory(told: Path) -> Path:
    """Where the engine said vLLM's files go, once it has said; checked private (0700, this user's)."""
    deadline = time.monotonic() + 60
    while not (told.exists() and told.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    rpc, tmp = told.read_text().split()
    assert rpc == tmp
    mode = Path(rpc).stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()
    return Path(rpc)


def engine_files_while_running(supervisor: EngineSupervisor, told: Path) -> Path:
    """The engine's directory for vLLM's files, checked while it runs; the supervisor stopped."""

    async def run() -> Path:
        await supervisor.start()
        try:
            return await asyncio.to_thread(told_directory, told)
        finally:
            await supervisor.stop()

    return asyncio.run(run())


def test_an_engine_on_our_socket_keeps_its_files_beside_it_made_at_start_and_removed_at_stop(tmp_path: Path) -> None:
    url = private_socket()
    directory = private_dir(url)
    assert directory is not None
    supervisor = supervised(url, tmp_path / "told")
    assert not directory.exists()  # planned, not started: nothing made yet
    assert engine_files_while_running(supervisor, tmp_path / "told") == directory
    assert not directory.exists()


def test_an_engine_on_a_port_gets_a_private_directory_too(tmp_path: Path) -> None:
    """vLLM's ZMQ sockets were left in /tmp, seven for every start of an engine on a loopback port."""
    directory = engine_files_while_running(supervised("http://127.0.0.1:9", tmp_path / "told"), tmp_path / "told")
    assert directory.parent == Path(tempfile.gettempdir()) and directory.name.startswith("mistral-local-engine-")
    assert not directory.exists()


def test_a_directory_someone_made_first_is_refused(tmp_path: Path) -> None:
    url = private_socket()
    directory = private_dir(url)
    assert directory is not None
    directory.mkdir(mode=0o777)
    try:
        with pytest.raises(FileExistsError):
            asyncio.run(supervised(url, tmp_path / "told").start())
    finally:
        directory.rmdir()


def test_an_address_it_did_not_choose_has_no_private_directory(tmp_path: Path) -> None:
    assert private_dir("http://127.0.0.1:8001") is None
    assert private_dir(f"unix:{tmp_path / 'engine.sock'}") is None
