"""Tool-call ids between clients and Mistral's tokenizer.

mistral-common accepts only 9-character alphanumeric tool-call ids; clients send `call_…`, UUIDs and ids minted by
other providers (vllm#9019). Ids that already fit pass unchanged, so the engine's own ids survive a tool loop as
they are. Others map to a 9-character digest of themselves: deterministic, so the same client id maps the same way
in every request of a conversation with no server-side state, and an assistant `tool_calls[].id` always meets its
`tool` message's `tool_call_id`.
"""

from __future__ import annotations

import hashlib
import secrets
import string

ID_LENGTH = 9
_ALPHABET = string.ascii_letters + string.digits


def is_mistral_id(tool_call_id: str) -> bool:
    return len(tool_call_id) == ID_LENGTH and tool_call_id.isascii() and tool_call_id.isalnum()


def to_mistral_id(tool_call_id: str) -> str:
    if is_mistral_id(tool_call_id):
        return tool_call_id
    n = int.from_bytes(hashlib.sha256(tool_call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(ID_LENGTH):
        n, r = divmod(n, len(_ALPHABET))
        chars.append(_ALPHABET[r])
    return "".join(chars)


def new_mistral_id() -> str:
    """A fresh id of the engine's form, for a call the gateway completes itself."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(ID_LENGTH))
