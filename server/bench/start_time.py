"""Measure `mistral-local serve` on this machine: seconds from launch to /health/ready, and the resident memory
of the gateway and every engine process once ready. Usage: mistral-local bench start-time [PROFILE]"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from server.serving import free_port


def main(profile: str = "cpu-tiny") -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--profile", profile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with {proc.returncode}")
            time.sleep(0.2)
        ready_s = time.monotonic() - started
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        rss = {p.pid: (" ".join(p.cmdline()[1:4]), p.memory_info().rss) for p in tree}
        print(f"profile {profile}: ready after {ready_s:.1f} s")
        for cmd, size in rss.values():
            print(f"  {size / 2**30:5.2f} GiB  {cmd}")
        print(f"  {sum(s for _, s in rss.values()) / 2**30:5.2f} GiB  total resident ({len(rss)} processes)")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main(*sys.argv[1:])
