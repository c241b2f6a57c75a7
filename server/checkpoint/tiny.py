"""`make-tiny`: a scaled-down Mistral Small 3.1 (or 3.2, or Magistral Small 1.2) checkpoint with the real
architecture and the real tokenizer.

Every key of the real `params.json` is kept and only sizes shrink, so vLLM takes the same code path
(Mistral3 / Pixtral, grouped-query attention, patch merger) with the official flags. head_dim stays 128: vLLM's CPU
attention kernel rejects small head sizes. Weights are random from a fixed seed, so the bytes are reproducible.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from server.checkpoint.identity import KNOWN, RELEASES, SYSTEM_PROMPT_FILE, write_identity
from server.checkpoint.layout import expected_tensors
from server.checkpoint.tiny_quantized import quantize
from server.checkpoint.tokenizer import THINK_TOKENS

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

# Not Magistral's own SYSTEM_PROMPT.txt (the real repository's is used with the real weights): a stand-in that says
# the same in brief, so the scaled-down checkpoint exercises the same path.
TINY_SYSTEM_PROMPT = (
    "Scaled-down stand-in for Magistral's system prompt: reason inside [THINK] and [/THINK], then answer."
)
IMAGE_SETTINGS = {"image_patch_size": 14, "max_image_size": 1540, "spatial_merge_size": 2}
# From v11 the file lists its special tokens (mistral-common refuses one that does not); ranks as Mistral's files
# number them: the 20 of earlier versions, unused ones up to 31, then [ARGS] and [CALL_ID]; a reasoning model's
# (Magistral, v13) adds [THINK] and [/THINK] (mistral-common's tests/test_tekken.py ranks them so).
V11_SPECIAL = {32: "[ARGS]", 33: "[CALL_ID]"}
THINK_SPECIAL = dict(zip((34, 35), THINK_TOKENS, strict=True))


def tekken(release: str = "3.1") -> dict[str, Any]:
    """mistral-common's packaged 131k Tekken vocabulary, configured as the `release`'s tokenizer (3.1: v7, 3.2: v11,
    magistral: v13 with [THINK]), with Pixtral's image settings."""
    from mistral_common.tokens.tokenizers.base import SpecialTokens
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    source = resources.files("mistral_common") / "data" / "tekken_240911.json"
    tekken: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    identity = KNOWN[RELEASES[release]]
    tekken["config"]["version"] = identity.tokenizer
    tekken["image"] = dict(IMAGE_SETTINGS)
    if release != "3.1":
        # The enum member's value: str() of it is its name in some mistral-common releases.
        named = {t["rank"]: SpecialTokens(t["token_str"]).value for t in Tekkenizer.DEPRECATED_SPECIAL_TOKENS}
        named |= V11_SPECIAL | (THINK_SPECIAL if identity.reasoning else {})
        ranks = range(max(named) + 1)
        special = [{"rank": r, "token_str": named.get(r, f"<SPECIAL_{r}>"), "is_control": True} for r in ranks]
        tekken["special_tokens"] = special
    return tekken


def write_tiny(directory: Path, release: str = "3.1") -> Path:
    """Write the checkpoint into `directory` (created if needed) and return it. Same bytes on every run. `release`:
    the tokenizer and the model record (served-model.json) of Mistral Small 3.1, 3.2 or Magistral Small 1.2."""
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
    _write_release(directory, release)
    return directory


def _write_release(directory: Path, release: str) -> None:
    """The release's tokenizer, and its record: `serve --model DIR` serves it under that release's id. A reasoning
    model's repository also ships its system prompt: the scaled-down one gets a stand-in."""
    (directory / "tekken.json").write_text(json.dumps(tekken(release)), encoding="utf-8")
    identity = KNOWN[RELEASES[release]]
    write_identity(directory, identity)
    if identity.reasoning:
        (directory / SYSTEM_PROMPT_FILE).write_text(TINY_SYSTEM_PROMPT + "\n", encoding="utf-8")


def write_tiny_hf(
    directory: Path, shard_bytes: int = 60_000_000, quantized: str | None = None, release: str = "3.1"
) -> Path:
    """The same scaled-down model in the Hugging Face layout: transformers' own Mistral3 config and module (so the
    tensor names and config keys are the ones HF checkpoints carry), saved in shards with their index, and the same
    tekken.json. Random weights from the same seed. `quantized` ("w8a8" or "w4a16"): its decoder's linear layers
    stored as RedHatAI's -quantized checkpoints store them (server/checkpoint/tiny_quantized.py)."""
    import torch
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig, PixtralVisionConfig

    p, v = TINY_PARAMS, TINY_PARAMS["vision_encoder"]
    text = MistralConfig(
        hidden_size=p["dim"], intermediate_size=p["hidden_dim"], num_hidden_layers=p["n_layers"],
        num_attention_heads=p["n_heads"], num_key_value_heads=p["n_kv_heads"], head_dim=p["head_dim"],
        rope_parameters={"rope_type": "default", "rope_theta": p["rope_theta"]}, rms_norm_eps=p["norm_eps"],
        vocab_size=p["vocab_size"],
        max_position_embeddings=131072, sliding_window=None, tie_word_embeddings=False,
    )  # fmt: skip
    # Its rope theta is Pixtral's default, 10000, as the model's.
    vision = PixtralVisionConfig(
        hidden_size=v["hidden_size"],
        intermediate_size=v["intermediate_size"],
        num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"],
        num_channels=v["num_channels"],
        image_size=v["image_size"],
        patch_size=v["patch_size"],
    )
    config = Mistral3Config(
        text_config=text, vision_config=vision, image_token_index=v["image_token_id"],
        spatial_merge_size=v["spatial_merge_size"], projector_hidden_act="gelu", multimodal_projector_bias=False,
        vision_feature_layer=-1, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(SEED)
    model = Mistral3ForConditionalGeneration(config).bfloat16()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, max_shard_size=shard_bytes)
    _write_release(directory, release)
    if quantized is not None:
        quantize(directory, quantized)
    return directory
