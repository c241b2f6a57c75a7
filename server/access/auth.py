"""API keys: stored as SHA-256 hashes, compared in constant time, each with a label and optional limits.

With no keys configured the gateway runs open, which `serve` allows only on a loopback address unless the
operator says `--insecure-no-auth`. Every route requires a key except those the operator lists as public.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import ConfigError, Forbidden, Unauthorized

KEY_PREFIX = "sk-ml-"
# A key's name or label, as it appears in logs and metrics: printable ASCII words, single spaces between them (no
# control characters, direction marks or trailing spaces).
NAME_PATTERN = r"^[A-Za-z0-9._@+\-]+( [A-Za-z0-9._@+\-]+)*$"


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    concurrent_requests: int | None = Field(None, ge=1)
    token_budget: int | None = Field(None, ge=0)  # total prompt + completion tokens; 402 when spent
    cost_budget: float | None = Field(None, ge=0)  # USD at the configured price; 402 when spent
    # A budget that resets (keys made through /keys): only what was spent since this time (Unix s) counts.
    cost_budget_since: float | None = Field(None, ge=0)


class KeySpec(BaseModel):
    """One key as the operator configures it: never the key itself, only its SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    limits: KeyLimits = KeyLimits()
    disabled: bool = False
    # Never routed to the hosted upstream, whatever the server allows (server/generation/dispatch.py).
    local_only: bool = False
    # An operator's key (OpenRouter's "management key"): reads /metrics, which shows every key's label and tokens.
    management: bool = False


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's label (its name, for display) and limits, and its id: what records, budgets,
    admission, the response cache and the prefix-cache salt know it by (None for both: auth is off). The id is the
    key's SHA-256, which no other key can have: a key made later under a deleted key's name is another key."""

    label: str | None
    limits: KeyLimits
    local_only: bool = False
    management: bool = False
    key_id: str | None = None

    @property
    def operator(self) -> bool:
        """May see every key's figures: a management key, or anyone where the operator turned keys off or made the
        route public (the request then has no key: ANONYMOUS)."""
        return self.management or self.label is None


ANONYMOUS = Principal(label=None, limits=KeyLimits())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def configured_keys(api_keys: Sequence[KeySpec], keys_file: Path | None) -> list[KeySpec]:
    """The keys of the environment, then those of the keys file."""
    return [*api_keys, *(load_keys_file(keys_file) if keys_file is not None else [])]


def load_keys_file(path: Path) -> list[KeySpec]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return [KeySpec.model_validate(k) for k in data.get("keys", [])]
    except (OSError, yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ConfigError(f"keys file {path} is invalid: {exc}") from exc


class KeyRing:
    def __init__(
        self, keys: list[KeySpec], lookup: Callable[[str], KeySpec | None] | None = None, stored: bool = False
    ) -> None:
        """`lookup`: the keys made through the API (server/access/keys.py), by SHA-256, asked when no configured key
        matches; `stored`: whether any exist (they keep keys on even if the configured ones were all removed)."""
        labels = [k.label for k in keys]
        if len(set(labels)) != len(labels):
            raise ConfigError("API key labels must be unique")
        self._keys = [(bytes.fromhex(k.sha256), k) for k in keys]
        self._lookup = lookup
        self._enabled = bool(keys) or stored

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def specs(self) -> list[KeySpec]:
        return [spec for _, spec in self._keys]

    def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("No auth credentials found")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found: KeySpec | None = None
        for stored, spec in self._keys:  # compare with every key, so timing says nothing about which matched
            if hmac.compare_digest(stored, digest):
                found = spec
        if found is None and self._lookup is not None:
            found = self._lookup(digest.hex())
        if found is None:
            raise Unauthorized("Invalid API key")
        if found.disabled:
            raise Forbidden(f"API key '{found.label}' is disabled")
        return Principal(
            found.label, found.limits, local_only=found.local_only, management=found.management, key_id=found.sha256
        )
