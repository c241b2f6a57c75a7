"""What a Mistral Small 3.1 checkpoint in Mistral-native format looks like, derived from its `params.json`.

Both `make-tiny` (which writes tensors of these shapes) and `check-model` (which compares safetensors headers
against them) read this module, so the two cannot disagree about the architecture.
"""

from __future__ import annotations

from typing import Any

Shape = tuple[int, ...]

# Keys the real model's params.json carries; a config missing any of them is not Mistral Small 3.1-shaped.
TEXT_KEYS = (
    "dim",
    "n_layers",
    "head_dim",
    "hidden_dim",
    "n_heads",
    "n_kv_heads",
    "rope_theta",
    "norm_eps",
    "vocab_size",
)
VISION_KEYS = (
    "hidden_size",
    "num_channels",
    "max_image_size",
    "patch_size",
    "rope_theta",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "adapter_bias",
    "mm_projector_id",
    "spatial_merge_size",
    "add_pre_mm_projector_layer_norm",
    "image_token_id",
    "image_break_token_id",
    "image_end_token_id",
    "image_size",
)

WEIGHTS_FILE = "consolidated.safetensors"
MISTRAL_FILES = ("params.json", WEIGHTS_FILE, "tekken.json")
HF_MARKERS = ("config.json",)


def config_problems(params: dict[str, Any]) -> list[str]:
    """Why `params` is not a Mistral Small 3.1-shaped config (empty when it is)."""
    problems = [f"params.json lacks '{k}'" for k in TEXT_KEYS if k not in params]
    vision = params.get("vision_encoder")
    if not isinstance(vision, dict):
        return [*problems, "params.json lacks the 'vision_encoder' section (Mistral Small 3.1 takes images)"]
    problems += [f"params.json vision_encoder lacks '{k}'" for k in VISION_KEYS if k not in vision]
    if problems:
        return problems
    if params["n_heads"] % params["n_kv_heads"]:
        problems.append("n_heads must be a multiple of n_kv_heads (grouped-query attention)")
    if vision["mm_projector_id"] != "patch_merge":
        problems.append(f"vision_encoder.mm_projector_id is {vision['mm_projector_id']!r}, expected 'patch_merge'")
    if vision["hidden_size"] % vision["num_attention_heads"]:
        problems.append("vision_encoder.hidden_size must be a multiple of num_attention_heads")
    return problems


def _block(prefix: str, dim: int, q_out: int, kv_out: int, ffn: int) -> dict[str, Shape]:
    """One pre-norm transformer block with SwiGLU, named as Mistral names it."""
    return {
        f"{prefix}.attention.wq.weight": (q_out, dim),
        f"{prefix}.attention.wk.weight": (kv_out, dim),
        f"{prefix}.attention.wv.weight": (kv_out, dim),
        f"{prefix}.attention.wo.weight": (dim, q_out),
        f"{prefix}.attention_norm.weight": (dim,),
        f"{prefix}.ffn_norm.weight": (dim,),
        f"{prefix}.feed_forward.w1.weight": (ffn, dim),
        f"{prefix}.feed_forward.w2.weight": (dim, ffn),
        f"{prefix}.feed_forward.w3.weight": (ffn, dim),
    }


def expected_tensors(params: dict[str, Any]) -> dict[str, Shape]:
    """Every tensor name and shape the checkpoint must hold (no biases: the model has none)."""
    dim, hd, vocab = params["dim"], params["head_dim"], params["vocab_size"]
    shapes: dict[str, Shape] = {
        "tok_embeddings.weight": (vocab, dim),
        "norm.weight": (dim,),
        "output.weight": (vocab, dim),
    }
    for i in range(params["n_layers"]):
        shapes |= _block(f"layers.{i}", dim, params["n_heads"] * hd, params["n_kv_heads"] * hd, params["hidden_dim"])
    v = params["vision_encoder"]
    vh, patch, merge = v["hidden_size"], v["patch_size"], v["spatial_merge_size"]
    shapes["vision_encoder.patch_conv.weight"] = (vh, v["num_channels"], patch, patch)
    shapes["vision_encoder.ln_pre.weight"] = (vh,)
    for i in range(v["num_hidden_layers"]):
        shapes |= _block(f"vision_encoder.transformer.layers.{i}", vh, vh, vh, v["intermediate_size"])
    if v["add_pre_mm_projector_layer_norm"]:
        shapes["pre_mm_projector_norm.weight"] = (vh,)
    shapes["patch_merger.merging_layer.weight"] = (vh, vh * merge * merge)
    shapes["vision_language_adapter.w_in.weight"] = (dim, vh)
    shapes["vision_language_adapter.w_out.weight"] = (dim, dim)
    return shapes


def parameter_count(params: dict[str, Any]) -> int:
    total = 0
    for shape in expected_tensors(params).values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total
