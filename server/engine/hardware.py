"""What accelerators this machine has. `nvidia-smi` is the probe: it ships with the driver, so it answers
exactly when a CUDA engine could run."""

from __future__ import annotations

import shutil
import subprocess


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout
