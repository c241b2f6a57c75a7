"""Every setting of the server, read once at the edge (CLI flags over `MISTRAL_LOCAL_*` environment variables)
and passed down. Nothing reads the environment after this."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

OPENROUTER_MODEL_ID = "mistralai/mistral-small-3.1-24b-instruct"
CANONICAL_SLUG = "mistralai/mistral-small-3.1-24b-instruct-2503"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MISTRAL_LOCAL_", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Model directory (Mistral-native). None: the scaled-down checkpoint, built into cache_dir on first use.
    model: Path | None = None
    profile: str | None = None
    model_id: str = OPENROUTER_MODEL_ID
    model_aliases: tuple[str, ...] = (CANONICAL_SLUG,)
    cache_dir: Path = Path.home() / ".cache" / "mistral-local"
    # Attach to an engine someone else runs instead of launching one.
    engine_url: str | None = None
    engine_api_key: SecretStr | None = None
    # Fixed engine port (default: a free one per start); lets other gateways attach to a supervised engine.
    engine_port: int | None = Field(None, ge=1, le=65535)
    engine_start_timeout_s: float = Field(900.0, gt=0)
    # How long a client waits on the engine before a 502; long generations on CPU are slow.
    engine_request_timeout_s: float = Field(600.0, gt=0)
    retry_after_s: int = Field(5, ge=1)
    log_level: str = "INFO"

    @property
    def served_names(self) -> list[str]:
        return [self.model_id, *(a for a in self.model_aliases if a != self.model_id)]
