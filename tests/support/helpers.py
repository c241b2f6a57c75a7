"""What many tests do the same way, written once: speak to a gateway (a chat request, a key's header), make images,
read Prometheus text, wait for something to become true instead of sleeping a fixed time, and the weather tool the
tool-call tests use (with the nudges random weights need to call it)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from openai.types.chat import ChatCompletionFunctionToolParam
from PIL import Image

CHAT = "/api/v1/chat/completions"
T = TypeVar("T")
# OpenRouter's Python SDK reads with httpx's default 5 s; a CPU engine on a busy 2-core machine may take longer.
SDK_TIMEOUT_MS = 120_000

WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Rome", "Paris", "Berlin"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}

# Small 3.2's tool calls are written by a grammar (mistral-common's, on vLLM's guidance backend). Random weights need
# three nudges to write one that ends: [TOOL_CALLS] (token 9) first, one call (the grammar then ends the answer),
# and `strict`, which puts the schema, with llguidance's compact whitespace, in the grammar (else free whitespace
# runs to max_tokens). What follows the engine's tokens (vLLM's v11 parser, the gateway, the SDKs) is as served.
STRICT_WEATHER: Any = {
    "type": "function",
    "function": WEATHER_TOOL["function"]
    | {
        "strict": True,
        "parameters": WEATHER_TOOL["function"]["parameters"] | {"x-guidance": {"whitespace_flexible": False}},
    },
}
ONE_CALL: Any = {"logit_bias": {"9": 100}, "parallel_tool_calls": False, "temperature": 0, "max_tokens": 64}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(base_url: str, body: dict[str, Any], *, path: str = CHAT, headers: dict[str, str] | None = None,
         timeout: float = 120) -> httpx.Response:  # fmt: skip
    """One request on a connection of its own (with several workers, the kernel picks one per connection)."""
    return httpx.post(f"{base_url}{path}", json=body, headers=headers or {}, timeout=timeout)


def long_result() -> str:
    """A tool result of a few hundred tokens. A turn that reads it has that many more prompt tokens than the same
    turn with a short result: a check that a tool result reached the engine (a prompt that merely grows from turn to
    turn says nothing, since the call itself is in the history)."""
    return json.dumps({"temp_c": 21, "notes": " ".join(secrets.token_hex(3) for _ in range(150))})


def png(width: int, height: int, color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def png_data_url(width: int = 300, height: int = 200, color: tuple[int, int, int] = (200, 30, 30)) -> str:
    return "data:image/png;base64," + base64.b64encode(png(width, height, color)).decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in Prometheus text, over those with every label given."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(found: Callable[[], T | None], timeout_s: float = 30, what: str = "the condition") -> T:
    """`found()` once it is not None (nor False), polled; AssertionError past the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = found()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.05)


def wait_until_stored(db: Path, ids: set[str]) -> None:
    """Until the records database holds these generations (its writer flushes in batches)."""

    def stored() -> bool:
        if not db.exists():
            return False
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return ids <= {row[0] for row in conn.execute("SELECT id FROM generations")}

    wait_for(stored, what=f"the records of {sorted(ids)} in {db}")
