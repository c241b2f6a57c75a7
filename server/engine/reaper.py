"""`python -m server.engine.reaper CMD...`: run the engine so that it cannot outlive the gateway.

The supervisor starts this process as the leader of a new process group and hands it the read end of a pipe (the
"lifeline") whose write end only the gateway holds. The engine (vLLM's API server, its engine core and workers)
runs inside that group. When the gateway exits for any reason, SIGKILL included, the kernel closes the write end,
the read here returns EOF, the whole group is terminated, and the engine's private directory (its sockets and
temporary files, server/engine/address.py) is removed, which the gateway no longer can. When the engine exits by
itself, whatever it left behind in the group is killed before this process exits with the engine's status (the
directory is kept: the gateway starts the next engine in it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import psutil

LIFELINE_ENV = "MISTRAL_LOCAL_LIFELINE_FD"
PRIVATE_DIR_ENV = "MISTRAL_LOCAL_PRIVATE_DIR"
GROUP_EXIT_GRACE_S = 10.0


def _kill_rest_of_group(sig: int) -> None:
    """Send `sig` to every other process of our group (the engine's descendants), sparing ourselves."""
    me, group = os.getpid(), os.getpgid(0)
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != me and os.getpgid(proc.pid) == group:
                os.kill(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _remove(private_dir: str | None) -> None:
    if private_dir is not None:
        shutil.rmtree(private_dir, ignore_errors=True)


def _watch_lifeline(fd: int, gateway_gone: threading.Event, private_dir: str | None) -> None:
    while os.read(fd, 1):  # returns b"" only once every write end is closed: the gateway is gone
        continue
    gateway_gone.set()
    _kill_rest_of_group(signal.SIGTERM)
    time.sleep(GROUP_EXIT_GRACE_S)
    # Still here: the engine ignored SIGTERM, so main() never returned to clean up.
    _kill_rest_of_group(signal.SIGKILL)
    _remove(private_dir)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m server.engine.reaper CMD [ARGS...]", file=sys.stderr)
        return 2
    lifeline = os.environ.pop(LIFELINE_ENV, None)
    private_dir = os.environ.pop(PRIVATE_DIR_ENV, None)
    # SIGTERM reaches the whole group at once (the supervisor signals the group); the engine shuts down on it
    # and we wait for that rather than dying first.
    signal.signal(signal.SIGTERM, lambda *_: None)
    child = subprocess.Popen(argv)
    gateway_gone = threading.Event()
    if lifeline is not None:
        watch = threading.Thread(target=_watch_lifeline, args=(int(lifeline), gateway_gone, private_dir), daemon=True)
        watch.start()
    code = child.wait()
    _kill_rest_of_group(signal.SIGKILL)
    if gateway_gone.is_set():
        _remove(private_dir)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
