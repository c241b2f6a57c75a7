"""`serve` refuses a taken address at once, before any engine loads, with a message that says which."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from server.errors import ConfigError
from server.serving import check_port_free


def test_a_taken_port_is_refused_before_the_engine_starts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
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


def test_an_address_that_is_not_ours_is_refused() -> None:
    # TEST-NET-1: documentation addresses, never one of this machine's.
    with pytest.raises(ConfigError, match=re.escape("cannot listen on 192.0.2.1:8000")):
        check_port_free("192.0.2.1", 8000)


def test_a_free_port_passes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    check_port_free("127.0.0.1", port)
