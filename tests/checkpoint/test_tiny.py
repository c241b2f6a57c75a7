"""The scaled-down checkpoint keeps the real model's config keys and tokenizer, and is reproducible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mistral_common.protocol.instruct.messages import SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from server.checkpoint.check import ModelFormat, check_model
from server.checkpoint.layout import parameter_count
from server.checkpoint.tiny import TINY_PARAMS, write_tiny

# Mistral-Small-3.1-24B-Instruct-2503's params.json (see shared docs, facts §1.2).
REAL_PARAMS: dict[str, Any] = {
    "dim": 5120,
    "n_layers": 40,
    "head_dim": 128,
    "hidden_dim": 32768,
    "n_heads": 32,
    "n_kv_heads": 8,
    "rope_theta": 1000000000.0,
    "norm_eps": 1e-05,
    "vocab_size": 131072,
    "vision_encoder": {
        "hidden_size": 1024,
        "num_channels": 3,
        "max_image_size": 1540,
        "patch_size": 14,
        "rope_theta": 10000.0,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
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


def test_same_keys_as_the_real_model_only_sizes_shrink() -> None:
    assert TINY_PARAMS.keys() == REAL_PARAMS.keys()
    assert TINY_PARAMS["vision_encoder"].keys() == REAL_PARAMS["vision_encoder"].keys()
    for key in ("head_dim", "vocab_size", "rope_theta", "norm_eps"):
        assert TINY_PARAMS[key] == REAL_PARAMS[key]
    tiny_vision, real_vision = TINY_PARAMS["vision_encoder"], REAL_PARAMS["vision_encoder"]
    for key in (
        "patch_size",
        "max_image_size",
        "spatial_merge_size",
        "mm_projector_id",
        "image_token_id",
        "image_break_token_id",
        "image_end_token_id",
        "add_pre_mm_projector_layer_norm",
    ):
        assert tiny_vision[key] == real_vision[key]
    # Grouped-query attention with the real 4:1 ratio, and a q projection wider than dim, as in the real model.
    assert TINY_PARAMS["n_heads"] // TINY_PARAMS["n_kv_heads"] == 4
    assert TINY_PARAMS["n_heads"] * TINY_PARAMS["head_dim"] > TINY_PARAMS["dim"]


def test_layout_reproduces_the_published_parameter_count() -> None:
    assert round(parameter_count(REAL_PARAMS) / 1e9, 2) == 24.01


def test_written_checkpoint_is_deterministic_and_checks_out(tmp_path: Path, tiny_model: Path) -> None:
    again = write_tiny(tmp_path / "again")
    for name in ("params.json", "consolidated.safetensors", "tekken.json"):
        digest = [hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (tiny_model, again)]
        assert digest[0] == digest[1], name
    report = check_model(again)
    assert report.ok, report.problems
    assert report.format is ModelFormat.MISTRAL
    assert 60e6 < report.parameters < 80e6


def test_tokenizer_is_v7_with_the_image_settings(tiny_model: Path) -> None:
    tekken = json.loads((tiny_model / "tekken.json").read_text())
    assert tekken["config"]["version"] == "v7"
    assert tekken["image"] == {"image_patch_size": 14, "max_image_size": 1540, "spatial_merge_size": 2}
    tok = MistralTokenizer.from_file(str(tiny_model / "tekken.json"))
    encoded = tok.encode_chat_completion(
        ChatCompletionRequest(messages=[SystemMessage(content="Be brief."), UserMessage(content="Hi")])
    )
    text = tok.decode(encoded.tokens, special_token_policy=SpecialTokenPolicy.KEEP)
    assert text.startswith("<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]")
