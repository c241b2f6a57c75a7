"""What the planner needs to know about a model, read from its own config (`params.json` or `config.json`).

Parameter groups come from the same tensor layout `check-model` verifies, so the planner counts exactly the
tensors vLLM loads. Quantized checkpoints keep embeddings, lm_head, norms and the vision tower in 16 bits (the
llm-compressor default); only the decoder's linear layers shrink.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from server.checkpoint.hf_layout import params_from_hf
from server.checkpoint.layout import config_problems, expected_tensors
from server.checkpoint.quantization import Weights
from server.errors import ConfigError

KvDtype = Literal["bf16", "fp8"]
# Bytes per decoder linear weight. int4 (W4A16) adds one 16-bit scale per group of 128 weights.
LINEAR_BYTES: dict[Weights, float] = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5 + 2 / 128}
KV_BYTES: dict[KvDtype, int] = {"bf16": 2, "fp8": 1}
# vLLM's context for a Mistral-format params.json that states none (vllm/transformers_utils/configs/mistral.py).
VLLM_MISTRAL_DEFAULT_CONTEXT = 128_000
LINEAR_SUFFIXES = tuple(f".{n}.weight" for n in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"))
REFERENCE_PARAMS = Path(__file__).resolve().parents[2] / "configs" / "models" / "mistral-small-3.1-24b-params.json"


@dataclass(frozen=True)
class ModelShape:
    name: str
    layers: int
    dim: int
    kv_heads: int
    heads: int
    head_dim: int
    max_context: int
    decoder_linear: int  # quantizable parameters
    embedding: int
    lm_head: int
    other_text: int  # norms
    vision: int  # vision tower, pre-projector norm, patch merger, adapter
    vision_hidden: int
    vision_ffn: int
    patches_per_image: int  # at the maximum image size
    tokens_per_image: int  # [IMG] tokens plus row breaks, at the maximum image size

    @property
    def parameters(self) -> int:
        return self.decoder_linear + self.embedding + self.lm_head + self.other_text + self.vision

    def weight_bytes(self, weights: Weights) -> float:
        return self.decoder_linear * LINEAR_BYTES[weights] + 2.0 * (self.parameters - self.decoder_linear)

    def kv_bytes_per_token(self, kv: KvDtype) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES[kv]  # K and V, every layer

    def decode_bytes_per_step(self, weights: Weights) -> float:
        """Weights read to decode one token: every decoder layer and lm_head (the embedding is a lookup and the
        vision tower is idle)."""
        return self.decoder_linear * LINEAR_BYTES[weights] + 2.0 * (self.lm_head + self.other_text)

    def vision_bytes(self, images: int) -> float:
        """The vision encoder's budget for `images` images of the maximum size: their embeddings waiting in the
        encoder cache, plus one encoder pass's activations (attention and MLP inputs and outputs, 16-bit)."""
        if images == 0:
            return 0.0
        cache = images * self.tokens_per_image * self.dim * 2
        encoder = self.patches_per_image * (4 * self.vision_hidden + 2 * self.vision_ffn) * 2
        return float(cache + encoder)


def shape_from_params(params: dict[str, Any], name: str) -> ModelShape:
    problems = config_problems(params)
    if problems:
        raise ConfigError(f"{name}: not a Mistral Small 3.1-shaped config: " + "; ".join(problems))
    groups = {"linear": 0, "embedding": 0, "lm_head": 0, "other": 0, "vision": 0}
    for tensor, shape in expected_tensors(params).items():
        size = math.prod(shape)
        if tensor.startswith("layers.") and tensor.endswith(LINEAR_SUFFIXES):
            groups["linear"] += size
        elif tensor == "tok_embeddings.weight":
            groups["embedding"] += size
        elif tensor == "output.weight":
            groups["lm_head"] += size
        elif tensor.startswith("layers.") or tensor == "norm.weight":
            groups["other"] += size
        else:
            groups["vision"] += size
    v = params["vision_encoder"]
    side = math.ceil(v["max_image_size"] / v["patch_size"])
    merged = math.ceil(side / v["spatial_merge_size"])
    context = params.get("max_position_embeddings") or params.get("max_seq_len") or VLLM_MISTRAL_DEFAULT_CONTEXT
    return ModelShape(
        name=name,
        layers=params["n_layers"],
        dim=params["dim"],
        kv_heads=params["n_kv_heads"],
        heads=params["n_heads"],
        head_dim=params["head_dim"],
        max_context=int(context),
        decoder_linear=groups["linear"],
        embedding=groups["embedding"],
        lm_head=groups["lm_head"],
        other_text=groups["other"],
        vision=groups["vision"],
        vision_hidden=v["hidden_size"],
        vision_ffn=v["intermediate_size"],
        patches_per_image=side * side,
        tokens_per_image=merged * merged + merged,  # a break after each row; the last one is [IMG_END]
    )


def read_shape(path: Path) -> ModelShape:
    """A model directory, or its params.json / config.json."""
    if path.is_dir():
        candidates = [path / "params.json", path / "config.json"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise ConfigError(f"{path} holds neither params.json nor config.json")
        path = found
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    params = params_from_hf(data) if path.name == "config.json" else data
    return shape_from_params(params, path.parent.name)


def reference_shape() -> ModelShape:
    """Mistral Small 3.1 24B's own params.json (shipped, so plans work before the weights are downloaded)."""
    return replace(read_shape(REFERENCE_PARAMS), name="Mistral Small 3.1 24B")
