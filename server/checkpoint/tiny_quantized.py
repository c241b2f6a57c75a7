"""The scaled-down HF checkpoint's decoder quantized in compressed-tensors, as RedHatAI's Mistral Small 3.1
checkpoints are: INT8 W8A8 (-quantized.w8a8: per-channel weight scales, dynamic per-token activations) and INT4 W4A16
(-quantized.w4a16: groups of 128 with their scales, eight values packed in an int32). The vision tower, its projector
and lm_head stay 16-bit, named in the section's `ignore` as theirs are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DECODER_LINEAR = re.compile(r"^(model\.)?language_model\.(model\.)?layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$")
IGNORE = ["lm_head", "re:.*vision_tower.*", "re:.*multi_modal_projector.*"]
INT = {"type": "int", "symmetric": True, "dynamic": False}
SCHEMES: dict[str, dict[str, Any]] = {
    "w8a8": {
        "format": "int-quantized",
        "weights": INT | {"num_bits": 8, "strategy": "channel"},
        "input_activations": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True},
    },
    "w4a16": {
        "format": "pack-quantized",
        "weights": INT | {"num_bits": 4, "strategy": "group", "group_size": 128},
        "input_activations": None,
    },
}


def quantization_config(scheme: str) -> dict[str, Any]:
    s = SCHEMES[scheme]
    group = {"targets": ["Linear"], "weights": s["weights"], "input_activations": s["input_activations"]}
    return {
        "quant_method": "compressed-tensors",
        "format": s["format"],
        "quantization_status": "compressed",
        "config_groups": {"group_0": group},
        "ignore": IGNORE,
    }


def quantize(directory: Path, scheme: str) -> None:
    """Each decoder linear weight of the shards in `directory` rewritten in `scheme`, and config.json told so."""
    from safetensors.torch import load_file, save_file

    index_path = directory / "model.safetensors.index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    weight_map: dict[str, str] = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors = load_file(str(directory / shard))
        for name in [n for n in tensors if DECODER_LINEAR.match(n)]:
            parts = (_w8a8 if scheme == "w8a8" else _w4a16)(tensors.pop(name))
            tensors |= {f"{name.removesuffix('weight')}{suffix}": t for suffix, t in parts.items()}
        save_file(tensors, str(directory / shard), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(tensors, shard)
    index_path.write_text(
        json.dumps({"metadata": index.get("metadata", {}), "weight_map": weight_map}), encoding="utf-8"
    )
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = quantization_config(scheme)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _w8a8(weight: Any) -> dict[str, Any]:
    """INT8, symmetric, each output channel with its scale (round to nearest)."""
    import torch

    w = weight.float()
    scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-8)
    q = torch.round(w / scale).clamp(-128, 127).to(torch.int8)
    return {"weight": q, "weight_scale": scale.to(torch.bfloat16)}


def _w4a16(weight: Any, group: int = 128) -> dict[str, Any]:
    """INT4, symmetric, each group of 128 inputs of an output channel with its scale; packed as compressed-tensors
    packs them (compressed_tensors.compressors.pack_to_int32: eight values to an int32 along the input)."""
    import torch
    from compressed_tensors.compressors import pack_to_int32

    out, inputs = weight.shape
    w = weight.float().reshape(out, inputs // group, group)
    scale = (w.abs().amax(dim=2, keepdim=True) / 7).clamp(min=1e-8)
    q = torch.round(w / scale).clamp(-8, 7).to(torch.int8).reshape(out, inputs)
    return {
        "weight_packed": pack_to_int32(q, 4),
        "weight_scale": scale.reshape(out, inputs // group).to(torch.bfloat16),
        "weight_shape": torch.tensor([out, inputs], dtype=torch.int64),
    }
