"""The planner against the published arithmetic (../shared/docs/mistral-small-3.1-facts.md §1.2, §3.2, §3.3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.checkpoint.identity import KNOWN, write_identity
from server.checkpoint.quantization import checkpoint_weights
from server.errors import ConfigError
from server.planning.gpus import Gpu, catalog_gpu
from server.planning.model_shape import REFERENCE_PARAMS, read_shape, reference_shape
from server.planning.planner import GB, Inventory, PlanRequest, card_request, kv_room, kv_tokens, plan

SHAPE = reference_shape()
# The facts document's GPUs: round marketing sizes and datasheet bandwidths.
H100 = Gpu("H100 80 GB", 80 * 10**9, 3.35e12, (9, 0))
H200 = Gpu("H200 141 GB", 141 * 10**9, 4.8e12, (9, 0))


def test_parameters_match_the_published_count() -> None:
    assert SHAPE.parameters / 1e9 == pytest.approx(24.01, abs=0.005)
    assert SHAPE.decoder_linear / 1e9 == pytest.approx(22.23, abs=0.005)
    assert SHAPE.embedding == SHAPE.lm_head == 131072 * 5120
    assert SHAPE.vision / 1e9 == pytest.approx(0.403 + 0.036, abs=0.002)
    assert SHAPE.weight_bytes("bf16") / GB == pytest.approx(48.0, abs=0.05)
    assert SHAPE.weight_bytes("fp8") / GB == pytest.approx(25.8, abs=0.05)


def test_kv_cache_is_160_kib_per_token_and_20_gib_per_128k_sequence() -> None:
    assert SHAPE.kv_bytes_per_token("bf16") == 160 * 1024
    assert SHAPE.kv_bytes_per_token("fp8") == 80 * 1024
    assert SHAPE.kv_bytes_per_token("bf16") * 131072 == 20 * 2**30


def test_a_max_size_image_costs_3080_tokens() -> None:
    assert SHAPE.tokens_per_image == 3080
    assert SHAPE.vision_bytes(0) == 0


@pytest.mark.parametrize(
    ("gpu", "weights", "kv", "published"),
    [
        (H100, "bf16", "bf16", 122_000),
        (H100, "bf16", "fp8", 244_000),
        (H100, "fp8", "bf16", 258_000),
        (H100, "fp8", "fp8", 515_000),
        (H200, "bf16", "bf16", 457_000),
        (H200, "bf16", "fp8", 914_000),
        (H200, "fp8", "bf16", 593_000),
        (H200, "fp8", "fp8", 1_190_000),
    ],
)
def test_kv_tokens_match_the_fits_table(gpu: Gpu, weights: str, kv: str, published: int) -> None:
    # The table: gpu_memory_utilization 0.9, 4 GB for activations and CUDA graphs, text only.
    request = PlanRequest(weights=weights, images_per_prompt=0)  # type: ignore[arg-type]
    tokens = kv_tokens(SHAPE, kv_room(SHAPE, gpu, request, 1), 1, kv)  # type: ignore[arg-type]
    assert tokens == pytest.approx(published, rel=0.005)


@pytest.mark.parametrize(
    ("gpu", "weights", "ceiling"), [(H100, "bf16", 73), (H100, "fp8", 142), (H200, "bf16", 105), (H200, "fp8", 204)]
)
def test_decode_ceiling_matches_the_bandwidth_bound(gpu: Gpu, weights: str, ceiling: int) -> None:
    p = plan(SHAPE, Inventory(gpu, 1), PlanRequest(weights=weights))  # type: ignore[arg-type]
    assert round(p.decode_ceiling_tok_s) == ceiling


@pytest.mark.parametrize(
    ("key", "count", "weights", "tp", "dp", "kv", "max_len"),
    [
        ("h100", 1, "bf16", 1, 1, "bf16", 128_000),
        ("h100", 2, "bf16", 1, 2, "bf16", 128_000),
        ("h200", 1, "bf16", 1, 1, "bf16", 128_000),
        ("a100-40gb", 2, "bf16", 2, 1, "bf16", 124_672),  # no FP8 on Ampere: the context shrinks instead
        ("l40s", 1, "fp8", 1, 1, "fp8", 128_000),  # bf16 KV would hold only ~81k tokens
        ("l4", 4, "fp8", 2, 2, "fp8", 107_776),
        ("rtx4090", 2, "fp8", 2, 1, "fp8", 128_000),
    ],
)
def test_smallest_tp_then_context_and_kv_dtype(
    key: str, count: int, weights: str, tp: int, dp: int, kv: str, max_len: int
) -> None:
    p = plan(SHAPE, Inventory(catalog_gpu(key), count), PlanRequest(weights=weights))  # type: ignore[arg-type]
    assert (p.tensor_parallel, p.data_parallel, p.kv_dtype, p.max_model_len) == (tp, dp, kv, max_len)
    assert p.kv_tokens >= p.max_model_len
    assert p.weights_per_gpu + p.kv_room_per_gpu < p.usable_per_gpu


def test_concurrency_target_counts_whole_sequences() -> None:
    p = plan(SHAPE, Inventory(catalog_gpu("h200"), 1), PlanRequest(target="concurrency", context=32768))
    assert p.max_model_len == 32768
    assert p.max_num_seqs == p.kv_tokens // 32768 > 10


def test_what_cannot_fit_is_refused_with_the_numbers() -> None:
    with pytest.raises(ConfigError, match=r"bf16 weights \(48.0 GB\) leave no room.*try fp8"):
        plan(SHAPE, Inventory(catalog_gpu("rtx4090"), 2), PlanRequest())
    with pytest.raises(ConfigError, match="no FP8 support"):
        plan(SHAPE, Inventory(catalog_gpu("a100-80gb"), 1), PlanRequest(kv_cache_dtype="fp8"))


def test_several_nodes_use_tp_per_node_and_pp_across() -> None:
    p = plan(SHAPE, Inventory(catalog_gpu("l4"), 2, nodes=2), PlanRequest(weights="fp8"))
    assert (p.tensor_parallel, p.pipeline_parallel, p.data_parallel) == (2, 2, 1)
    assert p.weights_per_gpu == pytest.approx(SHAPE.weight_bytes("fp8") / 4)
    with pytest.raises(ConfigError, match="must divide the 8 KV heads"):
        plan(SHAPE, Inventory(catalog_gpu("l4"), 3, nodes=2), PlanRequest(weights="fp8"))


def test_hf_config_reads_as_the_same_model(tmp_path: Path) -> None:
    config = {
        "architectures": ["Mistral3ForConditionalGeneration"],
        "spatial_merge_size": 2,
        "text_config": {
            "hidden_size": 5120, "num_hidden_layers": 40, "head_dim": 128, "intermediate_size": 32768,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 131072,
            "max_position_embeddings": 131072,
        },
        "vision_config": {
            "hidden_size": 1024, "num_hidden_layers": 24, "intermediate_size": 4096, "num_attention_heads": 16,
            "patch_size": 14, "image_size": 1540,
        },
        "quantization_config": {
            "quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}},
        },
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    hf = read_shape(tmp_path)
    assert hf.parameters == SHAPE.parameters
    assert hf.max_context == 131072  # stated in the file, so it wins over vLLM's 128,000 default
    assert checkpoint_weights(tmp_path) == "fp8"


def test_a_config_of_another_shape_is_refused(tmp_path: Path) -> None:
    (tmp_path / "params.json").write_text(json.dumps({"dim": 4096}))
    with pytest.raises(ConfigError, match="lacks 'n_layers'"):
        read_shape(tmp_path)


def test_a_mistral_format_fp8_checkpoint_is_planned_as_fp8(tmp_path: Path) -> None:
    params = json.loads(REFERENCE_PARAMS.read_text())
    params["quantization"] = {"qformat_weight": "fp8_e4m3", "qscheme_act": "TENSOR"}  # as vLLM's reader expects
    (tmp_path / "params.json").write_text(json.dumps(params))
    assert checkpoint_weights(tmp_path) == "fp8"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "params.json").write_bytes(REFERENCE_PARAMS.read_bytes())
    assert checkpoint_weights(plain) == "bf16"


def test_weights_this_gpu_has_no_kernel_for_are_refused_before_any_arithmetic() -> None:
    t4 = catalog_gpu("t4")  # Turing: INT8 W8A8 (CUTLASS), no Marlin INT4, no bfloat16
    with pytest.raises(ConfigError, match=r"Tesla T4 \(compute capability 7\.5\) has no vLLM kernel for int4 weights"):
        plan(SHAPE, Inventory(t4, 2), PlanRequest(weights="int4"))
    assert plan(SHAPE, Inventory(t4, 4), PlanRequest(weights="int8")).tensor_parallel == 4  # 16 GB cards
    unknown = Gpu("Some Future GPU", 48 * 2**30, 1e12, (0, 0))  # capability unknown: vLLM will say
    assert plan(SHAPE, Inventory(unknown, 1), PlanRequest(weights="int4")).tensor_parallel == 1


def test_a_reasoning_models_card_shapes_the_plan(tmp_path: Path) -> None:
    """Magistral's record: its card's 40,960-token context is what is served (not the model's 128k), the context holds
    a full-length answer, and the plan says how many such answers fit in the KV cache at once."""
    model = tmp_path / "magistral"
    model.mkdir()
    (model / "params.json").write_text(REFERENCE_PARAMS.read_text())
    write_identity(model, KNOWN["mistralai/Magistral-Small-2509"])
    request = card_request(model, PlanRequest(weights="int4"))
    assert (request.context, request.answer_tokens, request.reasoning) == (40960, 40960, True)
    p = plan(reference_shape(), Inventory(catalog_gpu("h100"), 1), request)
    assert p.max_model_len == 40960
    assert any(
        n.startswith(f"answers of up to 40960 tokens (the card's): {p.kv_tokens // 40960} such") for n in p.notes
    )
    assert card_request(model, PlanRequest(context=8192)).context == 8192  # one asked for wins
    assert card_request(tmp_path, PlanRequest()) == PlanRequest()  # no record: as asked
