"""Tensor parallel 2 on CPU gives the same greedy tokens as one rank; a killed gateway leaves no process."""

from __future__ import annotations

import os
import secrets
import signal
import stat
from pathlib import Path

import openai
import pytest

from tests.support.engine_requests import greedy
from tests.support.gateway_process import Gateway, start_gateway, wait_gone

pytestmark = pytest.mark.engine


def private_engine_socket(gw: Gateway) -> Path:
    """By default the engine's API server listens on no TCP port, only on a Unix socket in a directory only this
    user can enter (vLLM's key leaves routes such as /invocations open to whoever reaches the port)."""
    api_server = gw.engine_api_server()
    tcp = [c for c in api_server.net_connections(kind="inet") if c.status == "LISTEN"]
    assert tcp == [], tcp
    # psutil gives Unix sockets no status: the listening one is the one bound to the engine's path.
    (path,) = {c.laddr for c in api_server.net_connections(kind="unix") if c.laddr.endswith("/engine.sock")}
    socket_file = Path(path)
    assert socket_file.name == "engine.sock"
    assert stat.S_IMODE(socket_file.parent.stat().st_mode) == 0o700
    assert socket_file.parent.stat().st_uid == os.getuid()
    return socket_file


def test_tp2_matches_tp1_and_a_killed_gateway_leaves_no_orphans(gateway: Gateway, client: openai.OpenAI) -> None:
    key = secrets.token_urlsafe(16)
    tp2 = start_gateway("gateway-tp2", "--profile", "cpu-tiny-tp2", env={"MISTRAL_LOCAL_ENGINE_API_KEY": key})
    try:
        tp2.wait_ready()
        tree = tp2.tree()
        # vLLM titles each rank's worker process by its rank (setproctitle): two ranks ran, not one.
        titles = [(p.cmdline() or [""])[0].strip() for p in tree]
        ranks = sorted(t for t in titles if t.startswith("VLLM::Worker"))
        assert ranks == ["VLLM::Worker_TP0", "VLLM::Worker_TP1"], titles
        socket_file = private_engine_socket(tp2)
        tp2_client = openai.OpenAI(base_url=f"{tp2.url}/v1", api_key="unused", max_retries=0, timeout=120)
        with tp2_client:
            assert greedy(tp2_client) == greedy(client)
        # Another gateway of this user attaches to the engine over its socket.
        attached = start_gateway("gateway-on-socket", "--engine-url", f"unix:{socket_file}",
                                 env={"MISTRAL_LOCAL_ENGINE_API_KEY": key})  # fmt: skip
        try:
            attached.wait_ready(timeout_s=60)
            with openai.OpenAI(base_url=f"{attached.url}/v1", api_key="x", max_retries=0, timeout=120) as other:
                assert greedy(other) == greedy(client)
        finally:
            attached.stop()

        # SIGKILL gives the gateway no chance to clean up: the engine must still go (see server/engine/reaper.py).
        tp2.proc.send_signal(signal.SIGKILL)
        tp2.proc.wait()
        left = wait_gone(tree[1:], timeout_s=30)
        assert not left, [f"{p.pid} {p.cmdline()[:4]}" for p in left]
        assert not socket_file.parent.exists()  # the reaper removed the engine's directory (vLLM's files in it)
    finally:
        tp2.stop()
