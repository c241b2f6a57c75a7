"""Every setting of the server, read once at the edge (CLI flags over `MISTRAL_LOCAL_*` environment variables)
and passed down. Nothing reads the environment after this."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.access.auth import KeySpec
from server.checkpoint.identity import DEFAULT
from server.schemas.preset import Preset

OPENROUTER_MODEL_ID = DEFAULT.model_id
CANONICAL_SLUG = DEFAULT.canonical_slug


class Settings(BaseSettings):
    # populate_by_name: the fields named after OpenTelemetry's variables are also set by their own names.
    model_config = SettingsConfigDict(env_prefix="MISTRAL_LOCAL_", frozen=True, populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Gateway processes on the port; more than one when one core cannot relay the engine's output
    # (server/workers/: they share admission, limits and records through a control process).
    workers: int = Field(1, ge=1, le=64)
    # Model directory (Mistral-native). None: the scaled-down checkpoint, built into cache_dir on first use.
    model: Path | None = None
    # Random weights of the model's shape (vLLM's dummy load format): `model` then needs only params.json and
    # tekken.json. For qualifying hardware without a download (`mistral-local qualify`); the answers are noise.
    random_weights: bool = False
    # A shipped profile's name, a YAML path, or "auto": detect the GPUs and plan (no GPU: a CPU profile).
    profile: str = "auto"
    # How the served model is named and described (OpenRouter's Model record). Mistral Small 3.2 has the same
    # architecture: serve it under its own id by changing these.
    model_id: str = OPENROUTER_MODEL_ID
    canonical_slug: str = CANONICAL_SLUG
    model_aliases: tuple[str, ...] = ()
    model_name: str = DEFAULT.model_name
    model_description: str = DEFAULT.model_description
    hugging_face_id: str = DEFAULT.hugging_face_id
    default_temperature: float = 0.15  # Mistral's recommendation for this model
    # The `provider` named in responses, and this deployment's price in USD per token (OpenRouter's strings).
    provider_name: str = "Local"
    # The local provider's quantization as OpenRouter names it; default: the profile's, else the checkpoint's.
    quantization: str = "bf16"
    price_prompt: str = "0"
    price_completion: str = "0"
    # Generation records (SQLite; metadata only, never prompt or completion text).
    db_path: Path | None = None  # default: cache_dir/generations.sqlite3
    records_retention_days: float = Field(30.0, gt=0)
    # Largest request body accepted (base64 images make bodies large); above it: 413.
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # Remote image URLs: "public" (public addresses only), "allowlist" (only image_fetch_allowlist hosts), "deny".
    image_fetch_policy: Literal["public", "allowlist", "deny"] = "public"
    image_fetch_allowlist: tuple[str, ...] = ()
    # Images: remote fetch limits, and the model's maximum edge (larger images are downscaled before the engine).
    image_fetch_timeout_s: float = Field(10.0, gt=0)
    image_max_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    image_max_pixels: int = Field(50_000_000, ge=1)
    image_max_edge: int = Field(1540, ge=28)
    # Seconds between `: OPENROUTER PROCESSING` comments while a stream waits for its first token.
    keepalive_interval_s: float = Field(2.0, gt=0)
    # Plain text-delta chunks rewritten at the byte level; off, every chunk is parsed and re-encoded. The client
    # gets the same bytes either way (tests/generation/test_fast_path.py); only the gateway's CPU time differs.
    fast_path: bool = True
    cache_dir: Path = Path.home() / ".cache" / "mistral-local"
    # Attach to engines someone else runs (each started by `mistral-local engine`, or an llm-d / vLLM router
    # endpoint) instead of launching one: http://HOST:PORT or unix:PATH, several separated by commas (the flag
    # repeats). Their key: engine_api_key. A fleet file (YAML, server/fleet/fleet_file.py) lists engines with a key
    # each. With either, this gateway launches no engine of its own unless `engines` says how many.
    engine_url: Annotated[tuple[str, ...], NoDecode] = ()
    engine_api_key: SecretStr | None = None
    fleet_file: Path | None = None
    # Engines this gateway launches on this host from the profile, each on its own GPUs (the profile's TP x PP);
    # default: one, or none when engines are attached.
    engines: int | None = Field(None, ge=0, le=64)
    # Which engine a request goes to (server/fleet/routing.py): the conversation's engine (affinity), or, for
    # measuring against it, the least busy one or each in turn.
    routing: Literal["affinity", "least-loaded", "round-robin"] = "affinity"
    # The launched engine listens on a Unix socket in a private directory. A fixed loopback port instead lets other
    # gateways and benchmarks reach it, and every local user too (docs/security.md).
    engine_port: int | None = Field(None, ge=1, le=65535)
    engine_start_timeout_s: float = Field(900.0, gt=0)
    # Starts in a row that never reach ready before the server gives up and exits with a diagnosis (an engine that
    # was ready before is restarted however often it dies).
    engine_start_attempts: int = Field(3, ge=1)
    # How long a client waits on the engine before a 502; long generations on CPU are slow.
    engine_request_timeout_s: float = Field(600.0, gt=0)
    retry_after_s: int = Field(5, ge=1)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    # OpenTelemetry traces (server/telemetry/tracing.py), off unless a collector is named: the collector's address
    # (http://HOST:4318 for OTLP over HTTP, /v1/traces is added; HOST:4317 for gRPC). OpenTelemetry's standard
    # variables are read too; OTEL_EXPORTER_OTLP_HEADERS and the other exporter settings apply as they are.
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "MISTRAL_LOCAL_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf",
        validation_alias=AliasChoices(
            "MISTRAL_LOCAL_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
    )
    # The gateway's service name in traces; the engine's is this with "-engine".
    otel_service_name: str = Field(
        "mistral-local", validation_alias=AliasChoices("MISTRAL_LOCAL_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME")
    )
    # Presets (server/generation/presets.py): a YAML file (`presets: {NAME: {system_prompt, parameters, tools, …}}`)
    # and/or the same mapping as JSON here.
    presets_file: Path | None = None
    presets: dict[str, Preset] = Field(default_factory=dict)
    # OpenRouter's response cache (X-OpenRouter-Cache: true on a request): off unless enabled here; per key, in
    # memory, at most this many bytes of answers per process (server/generation/response_cache.py).
    response_cache: bool = False
    response_cache_max_bytes: int = Field(64 * 1024 * 1024, ge=0)
    # Debug only: write prompts and completions to the log. Off by default; `serve` warns loudly when on.
    log_content: bool = False
    # API keys: a YAML file (`keys: [{label, sha256, limits, disabled}]`) and/or the same list as JSON here.
    keys_file: Path | None = None
    api_keys: tuple[KeySpec, ...] = ()
    # Serving on a non-loopback address with no keys is refused unless this is set.
    insecure_no_auth: bool = False
    # Host names the gateway answers to (the Host header; DNS rebinding). Empty: the loopback names when it listens
    # on loopback, any name otherwise.
    allowed_hosts: tuple[str, ...] = ()
    # SIGTERM: how long requests in flight may finish before the engine stops.
    drain_timeout_s: float = Field(30.0, ge=0)
    # Routes reachable without a key: "PATH" or "METHOD PATH" (route templates).
    public_routes: tuple[str, ...] = (
        "/health/live",
        "GET /api/v1/models",
        "GET /v1/models",
        # The playground's page and assets (no data in them; the page calls the API with the user's key).
        "GET /",
        "GET /playground",
        "GET /playground/static/{name:path}",
    )
    # Hosted upstream (off unless upstream_url is set): an OpenRouter-compatible API that takes the models this
    # server does not serve, and the requests it cannot serve now (engine down, full, failing before the first
    # token), under the privacy rules of server/generation/upstream.py. Its key comes from
    # MISTRAL_LOCAL_UPSTREAM_API_KEY.
    upstream_url: str | None = None
    upstream_api_key: SecretStr | None = None
    # Models that may go upstream ("*": any); keys (labels) that may use it (empty: every key not local-only).
    upstream_models: tuple[str, ...] = ()
    upstream_keys: tuple[str, ...] = ()
    # The operator's switch: nothing ever goes upstream, whatever else is configured.
    local_only: bool = False
    upstream_timeout_s: float = Field(120.0, gt=0)
    # Admission: bounds on what is in flight (max_in_flight and max_tokens_in_flight per ready engine of the fleet),
    # and on what may wait for a slot (and for how long).
    max_in_flight: int = Field(64, ge=1)
    max_waiting: int = Field(64, ge=0)
    max_tokens_in_flight: int = Field(262_144, ge=1)
    queue_timeout_s: float = Field(10.0, gt=0)
    # Input limits (400 past them).
    max_messages: int = Field(1000, ge=1)
    max_images_per_request: int = Field(4, ge=0)
    max_output_tokens: int | None = Field(None, ge=1)
    max_string_chars: int = Field(1_000_000, ge=1)
    # PDFs (the file-parser plugin): how many a request may carry, and the child process that reads them: its clock,
    # its address-space limit, how many run at once per worker and how many more may wait (429 past that).
    max_files_per_request: int = Field(4, ge=0)
    pdf_timeout_s: float = Field(30.0, gt=0)
    pdf_memory_mb: int = Field(1024, ge=256)
    pdf_readers: int = Field(2, ge=1)
    pdf_queue: int = Field(8, ge=0)

    @field_validator("engine_url", mode="before")
    @classmethod
    def _urls(cls, value: object) -> object:
        """One URL, or several separated by commas (the environment variable), or a list (the repeated flag)."""
        if isinstance(value, str):
            return tuple(u.strip() for u in value.split(",") if u.strip())
        return value

    @property
    def keys_path(self) -> Path:
        """Keys made through the API (server/access/keys.py), beside the records."""
        return self.records_path.with_name("keys.sqlite3")

    @property
    def records_path(self) -> Path:
        return self.db_path or self.cache_dir / "generations.sqlite3"

    @property
    def served_names(self) -> list[str]:
        """Names the engine answers to: the OpenRouter id first (vLLM echoes the first), then the others."""
        names = [self.model_id, self.canonical_slug, *self.model_aliases]
        return list(dict.fromkeys(names))
