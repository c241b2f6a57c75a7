"""One streamed chat request, timed as `vllm bench serve` times it (vllm/benchmarks/lib/endpoint_request_func.py).

TTFT: send to the first `data:` message with a non-empty `choices`; ITL: the gaps between such messages; latency
(E2EL): send to the last of them (the usage-only chunk and `[DONE]` do not count); token counts from the final
`usage`. SSE comments (`: OPENROUTER PROCESSING`) are skipped. Clock: time.perf_counter().

`Target.first_token = "content"` times the first token at the first chunk that carries text or a tool call instead:
vLLM opens with a role-only chunk, which OpenRouter's shape (and so the gateway) does not send, and on a model whose
first tokens decode to nothing yet that chunk comes tokens before any text, so comparing a front with the engine
needs the same mark on both sides (mistral-local bench overhead).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from server import sse


@dataclass
class Outcome:
    start: float = 0.0  # perf_counter at send
    ok: bool = False
    ttft: float = 0.0
    latency: float = 0.0
    itls: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str = ""  # "HTTP 429 rate_limited", "timeout", "disconnected", …


@dataclass(frozen=True)
class Target:
    base_url: str  # ends with /v1 or /api/v1
    model: str
    api_key: str = ""
    label: str = ""
    first_token: str = "choices"  # or "content": see the module's docstring

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def headers(self) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return {"Content-Type": "application/json", **auth}


def _error_of(status: int, body: bytes) -> str:
    try:
        err = orjson.loads(body).get("error", {})
        code = err.get("code") if isinstance(err, dict) else None
    except (orjson.JSONDecodeError, AttributeError):
        code = None
    return f"HTTP {status}" + (f" {code}" if code not in (None, status) else "")


def _has_content(choices: list[dict[str, Any]]) -> bool:
    for c in choices:
        delta = c.get("delta") or {}
        if c.get("text") or delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _read_chunk(data: bytes, out: Outcome, now: float, last: float, on_content: bool) -> float:
    """Account for one `data:` payload; returns the time of the last choice-bearing chunk."""
    chunk: dict[str, Any] = orjson.loads(data)
    if chunk.get("error"):
        raise ValueError(f"stream error {chunk['error'].get('code', '')}".strip())
    if usage := chunk.get("usage"):
        out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        out.output_tokens = int(usage.get("completion_tokens") or 0)
    if not chunk.get("choices") or (out.ttft == 0.0 and on_content and not _has_content(chunk["choices"])):
        return last
    if out.ttft == 0.0:
        out.ttft = now - out.start
    else:
        out.itls.append(now - last)
    return now


async def send(session: aiohttp.ClientSession, target: Target, body: dict[str, Any]) -> Outcome:
    out = Outcome(start=time.perf_counter())
    last = out.start
    try:
        async with session.post(target.chat_url, data=orjson.dumps(body), headers=target.headers) as response:
            if response.status != 200:
                out.error = _error_of(response.status, await response.read())
                return out
            events = sse.Splitter()
            async for piece in response.content.iter_any():
                now = time.perf_counter()
                for data in map(sse.payload_of, events.feed(piece)):
                    if not data:
                        continue  # a comment or keep-alive
                    if data == sse.DONE_PAYLOAD:
                        break
                    last = _read_chunk(data, out, now, last, target.first_token == "content")
        out.latency = last - out.start
        out.ok = out.ttft > 0 and out.output_tokens > 0
        if not out.ok:
            out.error = "no tokens"
    except TimeoutError:
        out.error = "timeout"
    except aiohttp.ClientError as exc:
        out.error = type(exc).__name__
    except (ValueError, orjson.JSONDecodeError) as exc:
        out.error = str(exc)[:80]
    return out
