"""The memory planner: the smallest tensor-parallel size that fits, then the context, KV dtype and batch size.

Per GPU: usable = memory × gpu_memory_utilization; the KV cache gets what weights (split over TP × PP ranks), the
activation allowance and the vision encoder's budget leave. KV is split over the same ranks, so a replica holds
(room per GPU × GPUs per replica) / KV bytes per token. vLLM measures the real activation peak at start and sizes
its cache from it; this arithmetic predicts that outcome and picks the flags before anything is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from server.checkpoint.identity import read_identity
from server.checkpoint.quantization import CARD_QUALITY, Weights, kernel_refusal
from server.errors import ConfigError
from server.planning.gpus import Gpu
from server.planning.model_shape import KvDtype, ModelShape

GB = 1e9
# Activations, CUDA graphs, NCCL buffers and the sampler, per GPU (the facts document's stated allowance).
ACTIVATION_ALLOWANCE = 4 * GB
DEFAULT_UTILIZATION = 0.90
DESIGN_REQUEST_TOKENS = 4096  # the conversation size max_num_seqs is sized for, under the "context" target
MAX_NUM_SEQS_CAP = 256  # vLLM's own default: larger batches cost CUDA-graph memory for little gain here
MIN_TEXT_TOKENS = 4096
LEN_STEP = 256
TP_SIZES = (1, 2, 4, 8)
Target = Literal["context", "concurrency"]
KvChoice = Literal["auto", "bf16", "fp8"]


@dataclass(frozen=True)
class Inventory:
    gpu: Gpu
    count: int  # GPUs per node
    nodes: int = 1


@dataclass(frozen=True)
class PlanRequest:
    weights: Weights = "bf16"
    target: Target = "context"
    context: int | None = None  # "context": an upper bound; "concurrency": the context every sequence gets
    kv_cache_dtype: KvChoice = "auto"
    images_per_prompt: int = 4
    gpu_memory_utilization: float = DEFAULT_UTILIZATION
    answer_tokens: int = 0  # the longest answer the model's card asks room for (Magistral's reasoning: 40960)
    reasoning: bool = False  # the model reasons first (its engine gets the reasoning parser)


@dataclass(frozen=True)
class Plan:
    shape: ModelShape
    inventory: Inventory
    request: PlanRequest
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    kv_dtype: KvDtype
    max_model_len: int
    max_num_seqs: int
    kv_tokens: int  # per replica
    notes: list[str] = field(default_factory=list)

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def usable_per_gpu(self) -> float:
        return self.inventory.gpu.memory_bytes * self.request.gpu_memory_utilization

    @property
    def weights_per_gpu(self) -> float:
        return self.shape.weight_bytes(self.request.weights) / self.gpus_per_replica

    @property
    def vision_bytes(self) -> float:
        return self.shape.vision_bytes(self.request.images_per_prompt)

    @property
    def kv_room_per_gpu(self) -> float:
        return kv_room(self.shape, self.inventory.gpu, self.request, self.gpus_per_replica)

    def sequences_at(self, tokens: int) -> int | None:
        """Whole sequences of `tokens` the replica's KV cache holds at once (None: longer than max_model_len)."""
        return self.kv_tokens // tokens if tokens <= self.max_model_len else None

    @property
    def decode_ceiling_tok_s(self) -> float:
        """Batch-1 decode speed bound: every step reads all decoder weights; TP ranks read their shares at once,
        pipeline stages one after another."""
        per_step = self.shape.decode_bytes_per_step(self.request.weights)
        return self.inventory.gpu.bandwidth_bytes_s * self.tensor_parallel / per_step

    @property
    def quantization_flag(self) -> str | None:
        # vLLM quantizes a 16-bit checkpoint to FP8 while loading (and reads Mistral-format FP8 checkpoints).
        return "fp8" if self.request.weights == "fp8" else None


def card_request(model: Path, request: PlanRequest) -> PlanRequest:
    """The request as the model's card shapes it (recorded beside the weights): the context it recommends, unless one
    is asked for, and room for its longest answer."""
    card = read_identity(model) if model.is_dir() else None
    if card is None:
        return request
    context = request.context or card.context or None
    return replace(request, context=context, answer_tokens=card.max_output, reasoning=card.reasoning)


def kv_room(shape: ModelShape, gpu: Gpu, request: PlanRequest, gpus_per_replica: int) -> float:
    usable = gpu.memory_bytes * request.gpu_memory_utilization
    weights = shape.weight_bytes(request.weights) / gpus_per_replica
    return usable - weights - ACTIVATION_ALLOWANCE - shape.vision_bytes(request.images_per_prompt)


def kv_tokens(shape: ModelShape, room_per_gpu: float, gpus_per_replica: int, kv: KvDtype) -> int:
    return max(0, int(room_per_gpu * gpus_per_replica // shape.kv_bytes_per_token(kv)))


def min_context(shape: ModelShape, request: PlanRequest) -> int:
    """The shortest context worth serving: a full-size image per allowed image plus a conversation around them, and
    room for the longest answer the model's card asks for."""
    if request.target == "concurrency" and request.context:
        return request.context
    images = request.images_per_prompt * shape.tokens_per_image + 1024
    return max(MIN_TEXT_TOKENS, images, request.answer_tokens)


def _kv_options(gpu: Gpu, request: PlanRequest) -> tuple[KvDtype, ...]:
    if request.kv_cache_dtype == "fp8" and not gpu.fp8:
        raise ConfigError(f"{gpu.name} has no FP8 support (compute capability {gpu.compute_capability}): no fp8 KV")
    if request.kv_cache_dtype != "auto":
        return (request.kv_cache_dtype,)
    return ("bf16", "fp8") if gpu.fp8 else ("bf16",)


def _layout(shape: ModelShape, inventory: Inventory, request: PlanRequest) -> tuple[int, int]:
    """(tensor parallel, pipeline parallel). Several nodes: TP across each node's GPUs, PP across the nodes
    (vLLM's multi-node recipe). One node: the smallest TP whose KV room holds one minimal sequence."""
    gpu, need = inventory.gpu, min_context(shape, request)
    best_kv = _kv_options(gpu, request)[-1]
    if inventory.nodes > 1:
        tp, pp = inventory.count, inventory.nodes
        if shape.heads % tp or shape.kv_heads % tp:
            raise ConfigError(f"{tp} GPUs per node: tensor parallel must divide the {shape.kv_heads} KV heads")
        if kv_tokens(shape, kv_room(shape, gpu, request, tp * pp), tp * pp, best_kv) < need:
            raise ConfigError(f"{inventory.nodes} nodes × {inventory.count} {gpu.name}: the model does not fit")
        return tp, pp
    for tp in TP_SIZES:
        if tp > inventory.count or shape.heads % tp or shape.kv_heads % tp:
            continue
        if kv_tokens(shape, kv_room(shape, gpu, request, tp), tp, best_kv) >= need:
            return tp, 1
    raise ConfigError(
        f"{inventory.count} × {gpu.name} ({gpu.memory_bytes / GB:.1f} GB each): {request.weights} weights "
        f"({shape.weight_bytes(request.weights) / GB:.1f} GB) leave no room for one {need}-token sequence; "
        "try fp8 or int4 weights, or more GPUs"
    )


def plan(shape: ModelShape, inventory: Inventory, request: PlanRequest) -> Plan:
    gpu = inventory.gpu
    if (no_kernel := kernel_refusal(request.weights, gpu.name, gpu.compute_capability)) is not None:
        raise ConfigError(no_kernel)
    tp, pp = _layout(shape, inventory, request)
    dp = 1 if inventory.nodes > 1 else inventory.count // tp
    room = kv_room(shape, gpu, request, tp * pp)
    notes: list[str] = []
    if request.weights in ("fp8", "int8") and not gpu.fp8:
        notes.append(f"{gpu.name} has no FP8 tensor cores: vLLM runs 8-bit weights with 16-bit compute (Marlin)")
    if request.weights == "int4":
        notes.append("int4 (W4A16): a Hugging Face layout checkpoint (RedHatAI's -quantized.w4a16) with tekken.json")
    if (quality := CARD_QUALITY.get(request.weights)) is not None:
        notes.append(f"quality: {quality}")
    options = _kv_options(gpu, request)
    tokens = {kv: kv_tokens(shape, room, tp * pp, kv) for kv in options}
    wanted = min(shape.max_context, request.context or shape.max_context)
    if request.target == "concurrency":
        kv: KvDtype = options[0]
        if tokens[kv] < wanted:
            raise ConfigError(f"not even one {wanted}-token sequence fits in {tokens[kv]} KV tokens")
        max_len, seqs = wanted, tokens[kv] // wanted
        notes.append(f"max_num_seqs: {seqs} sequences of {wanted} tokens fit at once without preemption")
    else:
        kv = next((k for k in options if tokens[k] >= wanted), options[-1])
        if kv == "fp8" and request.kv_cache_dtype == "auto":
            notes.append(f"fp8 KV cache: a bf16 cache holds {tokens['bf16']} tokens, short of {wanted}")
        max_len = min(wanted, tokens[kv] // LEN_STEP * LEN_STEP)
        if max_len < wanted:
            notes.append(f"max_model_len {max_len}: the KV cache holds {tokens[kv]} tokens, short of {wanted}")
        seqs = tokens[kv] // DESIGN_REQUEST_TOKENS
        notes.append(f"max_num_seqs sized for {DESIGN_REQUEST_TOKENS}-token conversations")
    if request.answer_tokens:
        at_once = tokens[kv] // request.answer_tokens
        notes.append(
            f"answers of up to {request.answer_tokens} tokens (the card's): {at_once} such answers fit in the KV cache "
            "at once; vLLM preempts and resumes the rest"
        )
    if dp > 1:
        notes.append(f"{dp} data-parallel replicas: TP {tp} fits, so the other GPUs serve more requests")
    return Plan(
        shape=shape,
        inventory=inventory,
        request=request,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        data_parallel=dp,
        kv_dtype=kv,
        max_model_len=max_len,
        max_num_seqs=max(1, min(MAX_NUM_SEQS_CAP, seqs)),
        kv_tokens=tokens[kv],
        notes=notes,
    )
