"""What NVIDIA GPUs this machine has: NVML first (nvidia-ml-py: exact memory and bandwidth), then
`nvidia-smi --query-gpu` (it ships with the driver). Either answers exactly when a CUDA engine could run.

Both paths turn the driver's answer into plain records first (`nvml_records`, `parse_nvidia_smi`), so recorded
inventories from real machines test the parsing without a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.planning.gpus import MIB, Gpu, describe

SMI_FIELDS = "index,name,memory.total,compute_cap,clocks.max.memory,driver_version"


@dataclass(frozen=True)
class Detection:
    gpus: tuple[Gpu, ...]
    source: str  # "nvml" or "nvidia-smi" when GPUs were found
    why_none: str = ""  # when none were: what each probe said

    def inventory(self) -> tuple[Gpu, int] | None:
        """The largest group of same-named GPUs (the planner assumes identical GPUs), at its smallest memory."""
        if not self.gpus:
            return None
        name, count = Counter(g.name for g in self.gpus).most_common(1)[0]
        group = [g for g in self.gpus if g.name == name]
        return min(group, key=lambda g: g.memory_bytes), count


def gpus_from_nvml_records(records: list[dict[str, Any]]) -> tuple[Gpu, ...]:
    gpus = []
    for r in records:
        clock, width = r.get("mem_clock_max_mhz"), r.get("memory_bus_width_bits")
        # Double data rate: two transfers per clock, over the whole bus.
        bandwidth = clock * 1e6 * 2 * width / 8 if isinstance(clock, int) and isinstance(width, int) else None
        cc = r.get("compute_capability")
        gpus.append(describe(r["name"], int(r["memory_total"]), tuple(cc) if cc else None, bandwidth))
    return tuple(gpus)


def nvml_records() -> list[dict[str, Any]]:
    """Ask NVML (raises ImportError or pynvml.NVMLError when there is no driver)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        records = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            record: dict[str, Any] = {
                "index": i,
                "name": pynvml.nvmlDeviceGetName(h),
                "memory_total": int(pynvml.nvmlDeviceGetMemoryInfo(h).total),
                "compute_capability": list(pynvml.nvmlDeviceGetCudaComputeCapability(h)),
            }
            try:
                record["mem_clock_max_mhz"] = pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)
                record["memory_bus_width_bits"] = pynvml.nvmlDeviceGetMemoryBusWidth(h)
            except pynvml.NVMLError:
                pass  # older drivers: the catalog's bandwidth is used instead
            records.append(record)
        return records
    finally:
        pynvml.nvmlShutdown()


def parse_nvidia_smi(csv_text: str) -> tuple[Gpu, ...]:
    """`nvidia-smi --query-gpu=SMI_FIELDS --format=csv,noheader,nounits` output."""
    gpus = []
    for line in csv_text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 6 or not parts[2].isdigit():
            continue
        _, name, memory_mib, cc, _clock, _driver = parts
        major, _, minor = cc.partition(".")
        capability = (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None
        gpus.append(describe(name, int(memory_mib) * MIB, capability, None))
    return tuple(gpus)


def nvidia_smi_gpus() -> tuple[tuple[Gpu, ...], str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return (), "nvidia-smi is not on PATH"
    cmd = [smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (), f"nvidia-smi failed: {exc}"
    if out.returncode != 0:
        return (), f"nvidia-smi exited {out.returncode}: {(out.stdout + out.stderr).strip()[:200]}"
    gpus = parse_nvidia_smi(out.stdout)
    return gpus, "" if gpus else "nvidia-smi listed no GPU"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """This CPU's feature flags, as Linux lists them (empty where it does not)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


def nvml_gpus() -> tuple[tuple[Gpu, ...], str | None]:
    """The GPUs NVML lists, or none and why (any NVML failure: no library, no driver)."""
    try:
        gpus = gpus_from_nvml_records(nvml_records())
    except Exception as exc:
        return (), f"NVML: {type(exc).__name__}: {exc}"
    return gpus, None if gpus else "NVML listed no GPU"


def detect() -> Detection:
    gpus, nvml_why = nvml_gpus()
    if gpus:
        return Detection(gpus, "nvml")
    gpus, smi_why = nvidia_smi_gpus()
    if gpus:
        return Detection(gpus, "nvidia-smi")
    return Detection((), "", f"{nvml_why}; {smi_why}")
