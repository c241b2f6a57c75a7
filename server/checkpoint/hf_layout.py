"""The Hugging Face layout of a Mistral Small 3.x checkpoint (config.json, safetensors shards and their index), as
RedHatAI's quantized checkpoints and fine-tunes ship it: what `check-model` verifies in it, and its config restated
as params.json keys (the planner's and the layout checks' vocabulary).

The tokenizer must be mistral-common's (`tekken.json`): with the HF tokenizer files alone, vLLM's tool calls for this
model break (docs/engine.md), so such a directory is refused with the file to add. vLLM 0.32 serves the HF shards
with the Mistral-native config (`params.json`; its HF-config path fails to profile images with mistral-common's
tokenizer), so a directory without one (or whose params.json lacks config.json's quantization) is served through a
view: links to its files and a params.json that says it all (`mistral_view`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from server.checkpoint.layout import config_problems
from server.checkpoint.quantization import scheme

ARCHITECTURE = "Mistral3ForConditionalGeneration"
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def params_from_hf(config: dict[str, Any]) -> dict[str, Any]:
    """An HF-format Mistral3 config.json, restated as params.json keys."""
    text, vision = config.get("text_config", config), config.get("vision_config", {})
    heads = text["num_attention_heads"]
    image_size = vision.get("image_size", 1540)
    return {
        "dim": text["hidden_size"],
        "n_layers": text["num_hidden_layers"],
        "head_dim": text.get("head_dim") or text["hidden_size"] // heads,
        "hidden_dim": text["intermediate_size"],
        "n_heads": heads,
        "n_kv_heads": text["num_key_value_heads"],
        "rope_theta": text.get("rope_theta", 1e9),
        "norm_eps": text.get("rms_norm_eps", 1e-5),
        "vocab_size": text["vocab_size"],
        "max_position_embeddings": text.get("max_position_embeddings"),
        "vision_encoder": {
            "hidden_size": vision.get("hidden_size", 1024),
            "num_channels": vision.get("num_channels", 3),
            "max_image_size": image_size,
            "patch_size": vision.get("patch_size", 14),
            "rope_theta": vision.get("rope_theta", 10000.0),
            "intermediate_size": vision.get("intermediate_size", 4096),
            "num_hidden_layers": vision.get("num_hidden_layers", 24),
            "num_attention_heads": vision.get("num_attention_heads", 16),
            "adapter_bias": config.get("multimodal_projector_bias", False),
            "mm_projector_id": "patch_merge",
            "spatial_merge_size": config.get("spatial_merge_size", 2),
            "add_pre_mm_projector_layer_norm": True,
            "image_token_id": config.get("image_token_index", 10),
            "image_break_token_id": 12,
            "image_end_token_id": 13,
            "image_size": image_size,
        },
    }


def config_and_problems(directory: Path) -> tuple[dict[str, Any], list[str]]:
    """config.json, and what is wrong with it: the architecture, the text and vision sections, the quantization."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {}, [f"config.json cannot be read as JSON ({exc})"]
    if not isinstance(config, dict):
        return {}, ["config.json is not a JSON object"]
    architectures = config.get("architectures") or []
    if ARCHITECTURE not in architectures:
        return config, [f"config.json's architectures are {architectures}: Mistral Small 3.x is {ARCHITECTURE}"]
    if not isinstance(config.get("text_config"), dict) or not isinstance(config.get("vision_config"), dict):
        return config, ["config.json lacks text_config or vision_config (Mistral Small 3.x takes images)"]
    try:
        problems = [p.replace("params.json", "config.json") for p in config_problems(params_from_hf(config))]
    except KeyError as exc:
        problems = [f"config.json's text_config lacks {exc}"]
    try:
        scheme(config.get("quantization_config"))
    except ValueError as exc:
        problems.append(f"config.json: {exc}")
    return config, problems


def shard_map(directory: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Each shard's tensors, as the index lists them (a single model.safetensors: none listed, read its header),
    and what is missing."""
    if (directory / INDEX).is_file():
        try:
            weight_map = json.loads((directory / INDEX).read_text(encoding="utf-8"))["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            return {}, [f"{INDEX} cannot be read ({exc})"]
        shards: dict[str, list[str]] = defaultdict(list)
        for tensor, shard in weight_map.items():
            shards[shard].append(tensor)
        missing = [
            f"{name}, listed in {INDEX}, is missing" for name in sorted(shards) if not (directory / name).is_file()
        ]
        return dict(shards), missing
    if (directory / SINGLE).is_file():
        return {SINGLE: []}, []
    return {}, [f"{directory} has no weights: neither {INDEX} with its shards nor {SINGLE}"]


def mistral_view(directory: Path, views: Path) -> Path:
    """`directory` if its own params.json says all vLLM needs; else a private directory (in `views`, one per source
    directory, made anew each time) of links to its files and a params.json: the directory's own, or one restated
    from its config.json, with config.json's quantization section when it lacks one (vLLM passes a
    compressed-tensors section through; without it INT8 or INT4 shards would be read as 16-bit)."""
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    quantization = config.get("quantization_config")
    own = directory / "params.json"
    if own.is_file():
        params = json.loads(own.read_text(encoding="utf-8"))
        if params.get("quantization") or not quantization:
            return directory
    else:
        params = {k: v for k, v in params_from_hf(config).items() if v is not None}
    if quantization:
        params["quantization"] = quantization
    views.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".view-", dir=views))
    for item in directory.resolve().iterdir():
        if item.name != "params.json":
            (staging / item.name).symlink_to(item)
    (staging / "params.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    view = views / hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    shutil.rmtree(view, ignore_errors=True)
    os.replace(staging, view)
    return view
