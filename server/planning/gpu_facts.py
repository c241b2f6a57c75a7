"""On a machine with NVIDIA GPUs: what detection reads through NVML and through nvidia-smi (they must agree), and
the plan `serve --profile auto` would launch there. Needs only the gateway's light dependencies, no vLLM:

    mistral-local plan --gpu-facts > gpu-facts.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from server.planning.hardware import detect, nvidia_smi_gpus, nvml_gpus
from server.planning.model_shape import reference_shape
from server.planning.planner import Inventory, PlanRequest, plan


def main() -> int:
    nvml, nvml_why = nvml_gpus()
    smi, smi_why = nvidia_smi_gpus()
    found = detect()
    inventory = found.inventory()
    report: dict[str, object] = {
        "nvml": [asdict(g) for g in nvml],
        "nvml_problem": nvml_why,
        "nvidia_smi": [asdict(g) for g in smi],
        "nvidia_smi_problem": smi_why,
        "detected_by": found.source,
    }
    if inventory is not None:
        gpu, count = inventory
        p = plan(reference_shape(), Inventory(gpu, count), PlanRequest())
        report["plan"] = {
            "tensor_parallel": p.tensor_parallel,
            "data_parallel": p.data_parallel,
            "max_model_len": p.max_model_len,
            "kv_cache_dtype": p.kv_dtype,
            "kv_tokens": p.kv_tokens,
            "max_num_seqs": p.max_num_seqs,
            "decode_ceiling_tok_s": round(p.decode_ceiling_tok_s, 1),
        }
    print(json.dumps(report, indent=1))
    same = [(a.name, a.memory_bytes, a.compute_capability) for a in nvml] == [
        (b.name, b.memory_bytes, b.compute_capability) for b in smi
    ]
    return 0 if nvml and same else 1


if __name__ == "__main__":
    sys.exit(main())
