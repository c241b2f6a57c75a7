"""Request bodies as OpenRouter accepts them (shared/docs/openrouter-api.md §2).

Unknown top-level fields are tolerated, as OpenRouter tolerates them (`extra="allow"`); they are never forwarded to
the engine. The `provider` object is strict, as in OpenRouter's schema (`additionalProperties: false`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# JSON allows integers of any size; the engine's encoder takes 64 bits. Bound them here, as 400s.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
# Tekken's vocabulary (Mistral Small 3.1 and 3.2): vLLM answers an id past it with a 500 when asked to echo it.
VOCABULARY_SIZE = 131_072
TokenId = Annotated[int, Field(ge=0, lt=VOCABULARY_SIZE)]
Number = float | Int64


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- content parts -------------------------------------------------------------------------------------------


class CacheControl(Lenient):
    type: Literal["ephemeral"] = "ephemeral"
    ttl: str | None = None


class TextPart(Lenient):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None


class ImageUrl(Lenient):
    url: str
    detail: Literal["auto", "low", "high", "original"] | None = None


class ImagePart(Lenient):
    type: Literal["image_url"]
    image_url: ImageUrl


class UnsupportedPart(Lenient):
    """Parts OpenRouter defines for other models; this one takes text and images only."""

    type: Literal["file", "input_audio", "video_url", "input_video"]


ContentPart = Annotated[TextPart | ImagePart | UnsupportedPart, Field(discriminator="type")]
Content = str | list[ContentPart]


# --- messages ------------------------------------------------------------------------------------------------


class FunctionCall(Lenient):
    name: str
    arguments: str = ""


class ToolCall(Lenient):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(Lenient):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(Lenient):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(Lenient):
    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    reasoning: str | None = None


class ToolMessage(Lenient):
    role: Literal["tool"]
    content: Content
    tool_call_id: str
    name: str | None = None


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


# --- tools and formats ---------------------------------------------------------------------------------------


class FunctionDef(Lenient):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Lenient):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(Lenient):
    name: str


class NamedToolChoice(Lenient):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(Lenient):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema", "grammar", "python"]
    json_schema: JsonSchemaSpec | None = None
    grammar: str | None = None


# --- OpenRouter routing ---------------------------------------------------------------------------------------

Quantization = Literal[
    "int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32", "unknown"
]


class MaxPrice(Strict):
    prompt: Number | str | None = None
    completion: Number | str | None = None
    image: Number | str | None = None
    audio: Number | str | None = None
    request: Number | str | None = None


class SortSpec(Strict):
    by: Literal["price", "throughput", "latency", "exacto"] | None = None
    partition: Literal["model", "none"] | None = None


class ProviderPreferences(Strict):
    order: list[str] | None = None
    allow_fallbacks: bool | None = None
    require_parameters: bool | None = None
    data_collection: Literal["allow", "deny"] | None = None
    zdr: bool | None = None
    enforce_distillable_text: bool | None = None
    only: list[str] | None = None
    ignore: list[str] | None = None
    quantizations: list[Quantization] | None = None
    sort: Literal["price", "throughput", "latency", "exacto"] | SortSpec | None = None
    preferred_min_throughput: Number | dict[str, Number] | None = None
    preferred_max_latency: Number | dict[str, Number] | None = None
    max_price: MaxPrice | None = None


class Plugin(Lenient):
    id: str
    enabled: bool = True


class Reasoning(Lenient):
    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool | None = None
    enabled: bool | None = None


class StreamOptions(Lenient):
    include_usage: bool | None = None


class Prediction(Lenient):
    type: Literal["content"]
    content: str | list[TextPart]


class Debug(Lenient):
    echo_upstream_body: bool | None = None


class UsageOption(Lenient):
    include: bool | None = None


# --- bodies --------------------------------------------------------------------------------------------------


class SamplingFields(Lenient):
    """Fields shared by chat and legacy completions."""

    model: str | None = None
    models: list[str] | None = None
    route: Literal["fallback", "sort"] | None = None
    provider: ProviderPreferences | None = None
    plugins: list[Plugin] | None = None
    transforms: list[str] | None = None
    usage: UsageOption | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=2**31)
    max_completion_tokens: int | None = Field(None, ge=1, le=2**31)
    temperature: Number | None = Field(None, ge=0, le=2)
    top_p: Number | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=2**31)
    min_p: Number | None = Field(None, ge=0, le=1)
    top_a: Number | None = Field(None, ge=0, le=1)
    frequency_penalty: Number | None = Field(None, ge=-2, le=2)
    presence_penalty: Number | None = Field(None, ge=-2, le=2)
    repetition_penalty: Number | None = Field(None, gt=0, le=2)
    seed: Int64 | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, Number] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    session_id: str | None = Field(None, max_length=256)
    debug: Debug | None = None
    response_format: ResponseFormat | None = None
    # Not OpenRouter's: vLLM's sampling extra, so benchmarks (`mistral-local bench`, `vllm bench serve`) get
    # exactly the output lengths they ask for, through the gateway as from the engine.
    ignore_eos: bool | None = None

    @model_validator(mode="after")
    def _one_output_limit(self) -> SamplingFields:
        """`max_completion_tokens` (OpenAI's newer name) wins over `max_tokens`; what follows reads `max_tokens`."""
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class ChatRequest(SamplingFields):
    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    prediction: Prediction | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: str | None = None
    include_reasoning: bool | None = None
    modalities: list[Literal["text", "image", "audio"]] | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    # OpenRouter's tiers (2026: `fast` is an alias of `priority`; `ultrafast` falls back to it), as the engine's
    # priority scheduling.
    service_tier: Literal["auto", "default", "flex", "priority", "fast", "ultrafast", "scale"] | None = None
    prompt_cache_key: str | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[TokenId] | list[list[TokenId]]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=16)
    n: int | None = Field(None, ge=1, le=16)


class TokenizeRequest(Lenient):
    """vLLM's /tokenize, as far as this gateway passes it on: a prompt, or messages (with tools) that go through the
    same shaping and image policy as chat. Other fields are ignored, never forwarded."""

    model: str | None = None
    prompt: str | None = None
    messages: list[Message] | None = Field(None, min_length=1)
    tools: list[Tool] | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None
    add_special_tokens: bool | None = None
    return_token_strs: bool | None = None


class DetokenizeRequest(Lenient):
    model: str | None = None
    tokens: list[TokenId] = Field(max_length=1_000_000)
