"""GPUs as the planner sees them: name, memory, memory bandwidth and whether they do FP8.

Detection (server/planning/hardware.py) reads memory and, through NVML, the bandwidth itself; this catalog fills in
what `nvidia-smi` cannot tell and describes the GPUs the shipped profiles are planned for. Memory sizes are the
totals `nvidia-smi` reports (MiB), not the marketing numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.errors import ConfigError

MIB = 1024 * 1024
# FP8 tensor cores, hence vLLM's fp8 weights and fp8 KV cache at full speed: Ada (8.9) and Hopper (9.0) onwards.
FP8_COMPUTE_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int
    bandwidth_bytes_s: float
    compute_capability: tuple[int, int]

    @property
    def fp8(self) -> bool:
        return self.compute_capability >= FP8_COMPUTE_CAPABILITY


@dataclass(frozen=True)
class Known:
    key: str  # what the shipped profiles call it
    match: str  # a substring of the name nvidia-smi reports
    memory_mib: int
    bandwidth_tb_s: float
    compute_capability: tuple[int, int]


# Most specific first: "H100 PCIe" before "H100". Bandwidths are NVIDIA's datasheet figures.
CATALOG: tuple[Known, ...] = (
    Known("h200", "H200", 143771, 4.8, (9, 0)),
    Known("h100-nvl", "H100 NVL", 95830, 3.9, (9, 0)),
    Known("h100-pcie", "H100 PCIe", 81559, 2.0, (9, 0)),
    Known("h100", "H100", 81559, 3.35, (9, 0)),
    Known("a100-80gb", "A100-SXM4-80GB", 81920, 2.039, (8, 0)),
    Known("a100-80gb-pcie", "A100 80GB PCIe", 81920, 1.935, (8, 0)),
    Known("a100-40gb", "A100-SXM4-40GB", 40960, 1.555, (8, 0)),
    Known("a100-40gb-pcie", "A100-PCIE-40GB", 40960, 1.555, (8, 0)),
    Known("a100", "A100", 40960, 1.555, (8, 0)),  # another A100 variant: the lower bandwidth, to be safe
    Known("l40s", "L40S", 46068, 0.864, (8, 9)),
    Known("l40", "L40", 46068, 0.864, (8, 9)),
    Known("l4", "L4", 23034, 0.300, (8, 9)),
    Known("rtx4090", "RTX 4090", 24564, 1.008, (8, 9)),
    Known("rtx3090", "RTX 3090", 24576, 0.936, (8, 6)),
    Known("rtx6000-ada", "RTX 6000 Ada", 49140, 0.960, (8, 9)),
    Known("a10g", "A10G", 23028, 0.600, (8, 6)),
    Known("a10", "A10", 23028, 0.600, (8, 6)),
    Known("t4", "T4", 15360, 0.320, (7, 5)),
)
NAMES = {
    "h200": "NVIDIA H200",
    "h100": "NVIDIA H100 80GB HBM3",
    "a100-80gb": "NVIDIA A100-SXM4-80GB",
    "a100-40gb": "NVIDIA A100-SXM4-40GB",
    "l40s": "NVIDIA L40S",
    "l4": "NVIDIA L4",
    "rtx4090": "NVIDIA GeForce RTX 4090",
    "rtx3090": "NVIDIA GeForce RTX 3090",
    "t4": "Tesla T4",
}


def known(name: str) -> Known | None:
    """The catalog entry whose name is a whole word of `name` ("L4" is not in "L40S", "A10" not in "A100")."""
    for entry in CATALOG:
        if re.search(rf"(?<![a-z0-9]){re.escape(entry.match.lower())}(?![a-z0-9])", name.lower()):
            return entry
    return None


def catalog_gpu(key_or_name: str) -> Gpu:
    """A GPU from the catalog, by its key (`h100`) or its nvidia-smi name."""
    entry = next((k for k in CATALOG if k.key == key_or_name.lower()), None) or known(key_or_name)
    if entry is None:
        keys = ", ".join(k.key for k in CATALOG)
        raise ConfigError(f"unknown GPU {key_or_name!r}; known: {keys} (or give --memory-gib and --bandwidth-tbs)")
    return Gpu(
        name=NAMES.get(entry.key, f"NVIDIA {entry.match}"),
        memory_bytes=entry.memory_mib * MIB,
        bandwidth_bytes_s=entry.bandwidth_tb_s * 1e12,
        compute_capability=entry.compute_capability,
    )


def describe(name: str, memory_bytes: int, compute_capability: tuple[int, int] | None, bandwidth: float | None) -> Gpu:
    """A detected GPU: what the driver said, completed from the catalog (or conservatively, for unknown ones)."""
    entry = known(name)
    if bandwidth is None:
        bandwidth = entry.bandwidth_tb_s * 1e12 if entry else 0.0
    if compute_capability is None:
        compute_capability = entry.compute_capability if entry else (0, 0)
    return Gpu(name, memory_bytes, bandwidth, compute_capability)
