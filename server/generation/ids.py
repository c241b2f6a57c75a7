"""The names a generation is given: OpenRouter's generation ids, and each key's prefix-cache namespace (vLLM's
`cache_salt`), which keeps one key's cached prompts out of another's reach."""

from __future__ import annotations

import hashlib
import secrets
import string
import time

_ALNUM = string.ascii_letters + string.digits


def new_generation_id() -> str:
    """OpenRouter's id format: gen-<unix seconds>-<20 alphanumerics>. One read of the OS's randomness, not one per
    character (`secrets.choice` reads it 20 times); bytes past the last whole multiple of 62 are dropped, so every
    character is equally likely."""
    chars: list[str] = []
    while len(chars) < 20:
        chars += [_ALNUM[b % 62] for b in secrets.token_bytes(32) if b < 248]
    return f"gen-{int(time.time())}-{''.join(chars[:20])}"


def cache_salt(key_id: str) -> str:
    """The key's own prefix-cache namespace. Not a secret: clients cannot set it (the engine payload is built from
    checked fields only), so knowing another key's salt gains nothing."""
    return hashlib.sha256(f"mistral-local key {key_id}".encode()).hexdigest()[:32]
