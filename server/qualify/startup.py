"""What vLLM says while it starts (it logs each phase), read back from the gateway's log, where its lines arrive
prefixed `[engine]`. Figures that a release or a device does not log stay absent."""

from __future__ import annotations

import re
from typing import Any

PATTERNS = {
    "weights_s": r"(?:Loading weights took|Initializing model took) ([\d.]+) s",
    "model_loading_s": r"Model loading took [\d.]+ GiB memory and ([\d.]+) seconds",
    "model_loading_gib": r"Model loading took ([\d.]+) GiB memory",
    "compile_s": r"torch\.compile took ([\d.]+) s in total",
    "cuda_graphs_s": r"Graph capturing finished in ([\d.]+) secs",
    "cuda_graphs_gib": r"Graph capturing finished in [\d.]+ secs, took ([\d.]+) GiB",
    "init_engine_s": r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s",
    "kv_cache_tokens": r"(?:GPU|CPU|XPU)[^:]* KV cache size: ([\d,]+) tokens",
    "max_concurrency": r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x",
}


def startup_figures(log_text: str) -> dict[str, Any]:
    """The last value of each figure in the log (a restarted engine logs them again)."""
    found: dict[str, Any] = {}
    for key, pattern in PATTERNS.items():
        values = re.findall(pattern, log_text)
        if values:
            value = values[-1].replace(",", "")
            found[key] = int(value) if key == "kv_cache_tokens" else float(value)
    return found
