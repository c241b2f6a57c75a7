"""`python -m server.engine.reaper CMD...`: run the engine so that it cannot outlive the gateway.

The supervisor starts this process as the leader of a new process group and hands it the read end of a pipe (the
"lifeline") whose write end only the gateway holds. The engine (vLLM's API server, its engine core and workers)
runs inside that group. When the gateway exits for any reason, SIGKILL included, the kernel closes the write end,
the read here returns EOF, and the whole group is terminated. When the engine exits by itself, whatever it left
behind in the group is killed before this process exits with the engine's status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psutil

LIFELINE_ENV = "MISTRAL_LOCAL_LIFELINE_FD"
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


def _watch_lifeline(fd: int) -> None:
    while os.read(fd, 1):  # returns b"" only once every write end is closed: the gateway is gone
        continue
    _kill_rest_of_group(signal.SIGTERM)
    time.sleep(GROUP_EXIT_GRACE_S)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m server.engine.reaper CMD [ARGS...]", file=sys.stderr)
        return 2
    lifeline = os.environ.pop(LIFELINE_ENV, None)
    # SIGTERM reaches the whole group at once (the supervisor signals the group); the engine shuts down on it
    # and we wait for that rather than dying first.
    signal.signal(signal.SIGTERM, lambda *_: None)
    child = subprocess.Popen(argv)
    if lifeline is not None:
        threading.Thread(target=_watch_lifeline, args=(int(lifeline),), daemon=True).start()
    code = child.wait()
    _kill_rest_of_group(signal.SIGKILL)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
