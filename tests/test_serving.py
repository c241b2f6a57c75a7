"""`serve` refuses a taken address at once, before any engine loads, with a message that says which."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from server.errors import ConfigError
from server.serving import check_port_free


def test_a_taken_port_is_refused_before_the_engine_starts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)
        # The whole command: exit status 2 and the reason, without waiting for an engine (none is reachable here).
        done = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--port", str(port), "--engine-url", "http://127.0.0.1:9"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_free_port_passes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    check_port_free("127.0.0.1", port)
