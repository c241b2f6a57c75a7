"""`make-tiny`: a scaled-down Mistral Small 3.1 checkpoint with the real architecture and the real tokenizer.

Every key of the real `params.json` is kept and only sizes shrink, so vLLM takes the same code path
(Mistral3 / Pixtral, grouped-query attention, patch merger) with the official flags. head_dim stays 128: vLLM's CPU
attention kernel rejects small head sizes. Weights are random from a fixed seed, so the bytes are reproducible.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from server.checkpoint.layout import expected_tensors

SEED = 20250317  # Mistral Small 3.1's release date
INIT_STD = 0.02

TINY_PARAMS: dict[str, Any] = {
    "dim": 256,
    "n_layers": 2,
    "head_dim": 128,
    "hidden_dim": 512,
    "n_heads": 4,
    "n_kv_heads": 1,
    "rope_theta": 1000000000.0,
    "norm_eps": 1e-05,
    "vocab_size": 131072,
    "vision_encoder": {
        "hidden_size": 64,
        "num_channels": 3,
        "max_image_size": 1540,
        "patch_size": 14,
        "rope_theta": 10000.0,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "adapter_bias": False,
        "mm_projector_id": "patch_merge",
        "spatial_merge_size": 2,
        "add_pre_mm_projector_layer_norm": True,
        "image_token_id": 10,
        "image_break_token_id": 12,
        "image_end_token_id": 13,
        "image_size": 1540,
    },
}

# Mistral Small 3.1 uses tokenizer v7 (system-prompt tokens) with Pixtral image settings.
TOKENIZER_VERSION = "v7"
IMAGE_SETTINGS = {"image_patch_size": 14, "max_image_size": 1540, "spatial_merge_size": 2}


def tekken_v7() -> dict[str, Any]:
    """mistral-common's packaged 131k Tekken vocabulary, configured as Mistral Small 3.1's tokenizer."""
    source = resources.files("mistral_common") / "data" / "tekken_240911.json"
    tekken: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    tekken["config"]["version"] = TOKENIZER_VERSION
    tekken["image"] = dict(IMAGE_SETTINGS)
    return tekken


def write_tiny(directory: Path) -> Path:
    """Write the checkpoint into `directory` (created if needed) and return it. Same bytes on every run."""
    import torch  # heavy; only this command needs it
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(SEED)
    tensors: dict[str, torch.Tensor] = {}
    for name, shape in sorted(expected_tensors(TINY_PARAMS).items()):
        if name.endswith("norm.weight") or name.endswith("ln_pre.weight"):
            tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            tensors[name] = (torch.randn(shape, generator=generator) * INIT_STD).to(torch.bfloat16)
    save_file(tensors, str(directory / "consolidated.safetensors"), metadata={"format": "pt"})
    (directory / "params.json").write_text(json.dumps(TINY_PARAMS, indent=2) + "\n", encoding="utf-8")
    (directory / "tekken.json").write_text(json.dumps(tekken_v7()), encoding="utf-8")
    return directory
