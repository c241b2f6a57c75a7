"""The scaled-down checkpoint keeps the real model's config keys and tokenizer, and is reproducible."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.tool_calls import FunctionCall, ToolCall
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from server.checkpoint.check import ModelFormat, check_model
from server.checkpoint.identity import IDENTITY_FILE, identity_overrides, read_identity
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


def test_the_32_release_has_the_v11_tokenizer_and_is_served_under_its_own_id(tmp_path: Path) -> None:
    """Small 3.2's tokenizer writes a tool call `[TOOL_CALLS]name[ARGS]{json}` (3.1's: a JSON array), and the
    directory says which model it is, so `serve --model DIR` names it and takes its card's temperature."""
    small_32 = write_tiny(tmp_path / "tiny-32", release="3.2")
    report = check_model(small_32)
    assert report.ok, report.problems
    call = ToolCall(id="abcdefghi", function=FunctionCall(name="get_weather", arguments='{"city": "Rome"}'))
    turns = [AssistantMessage(tool_calls=[call]), ToolMessage(tool_call_id="abcdefghi", content="sunny")]
    asked: ChatCompletionRequest[Any] = ChatCompletionRequest(
        messages=[UserMessage(content="Hi"), *turns, UserMessage(content="And?")]
    )
    texts: dict[str, str] = {}
    for release, directory in (("3.1", write_tiny(tmp_path / "tiny-31")), ("3.2", small_32)):
        tok = MistralTokenizer.from_file(str(directory / "tekken.json"))
        tokens = tok.encode_chat_completion(asked).tokens
        texts[release] = tok.decode(tokens, special_token_policy=SpecialTokenPolicy.KEEP)
    assert '[TOOL_CALLS]get_weather[CALL_ID]abcdefghi[ARGS]{"city": "Rome"}</s>' in texts["3.2"]
    assert '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}' in texts["3.1"]
    named = identity_overrides(small_32, set())
    assert named["model_id"] == "mistralai/mistral-small-3.2-24b-instruct"
    assert named["default_temperature"] == 0.15  # its card's
    assert "model_id" not in identity_overrides(small_32, {"model_id"})  # the operator's choice stands


def test_the_magistral_release_marks_reasoning_with_its_think_tokens(tmp_path: Path) -> None:
    """Magistral Small 1.2's tokenizer (v13) has [THINK] and [/THINK] as special tokens, which is what makes the
    launcher give its engine vLLM's reasoning parser; its record carries the card's sampling and context."""
    magistral = write_tiny(tmp_path / "magistral", release="magistral")
    report = check_model(magistral, thorough=True)
    assert report.ok, report.problems
    assert report.tokenizer_version == 13 and report.reasoning
    assert not check_model(write_tiny(tmp_path / "small-32", release="3.2")).reasoning
    tok = MistralTokenizer.from_file(str(magistral / "tekken.json"))
    inner = tok.instruct_tokenizer.tokenizer
    assert (inner.get_special_token("[THINK]"), inner.get_special_token("[/THINK]")) == (34, 35)
    assert tok.decode([34, 1091, 35], special_token_policy=SpecialTokenPolicy.KEEP) == "[THINK][[/THINK]"
    named = identity_overrides(magistral, set())
    assert named["model_id"] == "mistralai/magistral-small-2509" and named["default_temperature"] == 0.7
    identity = read_identity(magistral)
    assert identity is not None and identity.top_p == 0.95 and identity.reasoning and identity.context == 40960


def test_a_record_written_before_the_cards_fields_reads_with_the_known_models(tmp_path: Path) -> None:
    record = {
        "model_id": "mistralai/mistral-small-3.2-24b-instruct",
        "canonical_slug": "mistralai/mistral-small-3.2-24b-instruct-2506",
        "model_name": "Mistral: Mistral Small 3.2 24B",
        "hugging_face_id": "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "model_description": "older record",
        "repo": "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
    }
    (tmp_path / IDENTITY_FILE).write_text(json.dumps(record))
    identity = read_identity(tmp_path)
    assert identity is not None and identity.created == 1750443016 and identity.temperature == 0.15
    assert identity.model_description == "older record"


def test_make_tiny_writes_the_release_asked_for(tmp_path: Path) -> None:
    cli = str(Path(sys.executable).parent / "mistral-local")
    out = subprocess.run([cli, "make-tiny", str(tmp_path / "t"), "--release", "3.2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(
        f"wrote {tmp_path / 't'}: Mistral: Mistral Small 3.2 24B (68.7 M values, mistral layout"
    )
    assert json.loads((tmp_path / "t" / "tekken.json").read_text())["config"]["version"] == "v11"
    refused = subprocess.run([cli, "make-tiny", str(tmp_path / "u"), "--release", "4"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--release must be one of 3.1, 3.2, magistral, not '4'" in refused.stderr
