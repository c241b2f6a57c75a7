"""A stand-in for vLLM's OpenAI server on loopback, for overhead benchmarks: it answers at once and streams
pre-rendered chunks, byte for byte as vLLM 0.32 writes them (pydantic, exclude_unset), one every `--interval-ms`:
the request's `max_tokens` of them, at most `--tokens`, the first after `--first-token-ms`.

    mistral-local bench synthetic-engine --port 8100 --tokens 128 --interval-ms 5 --model some/model
"""

from __future__ import annotations

import argparse
import asyncio
import functools

from aiohttp import web

from server import sse
from server.engine.vllm_release import PINNED


def rendered_stream(model: str, tokens: int) -> tuple[bytes, list[bytes], bytes]:
    """vLLM's opening role chunk, one chunk per token (the last with its finish reason), and usage with [DONE]."""
    head = {"id": "chatcmpl-synthetic", "object": "chat.completion.chunk", "created": 1764100000, "model": model}

    def choice(delta: dict[str, str], finish: str | None) -> dict[str, object]:
        extra = {"stop_reason": None} if finish else {}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **extra, "token_ids": None}

    role = sse.data({**head, "choices": [choice({"role": "assistant", "content": ""}, None)]})
    pieces = [
        sse.data({**head, "choices": [choice({"content": f" tok{i}"}, "length" if i == tokens - 1 else None)]})
        for i in range(tokens)
    ]
    usage = {"prompt_tokens": 40, "total_tokens": 40 + tokens, "completion_tokens": tokens}
    return role, pieces, sse.data({**head, "choices": [], "usage": usage}) + sse.DONE


def app(model: str, tokens: int, interval_s: float, first_token_s: float | None = None) -> web.Application:
    """`first_token_s`: the wait before the first token (default: one interval), then one token every interval."""
    first_s = interval_s if first_token_s is None else first_token_s
    rendered = functools.cache(functools.partial(rendered_stream, model))
    usage = {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}

    async def health(_: web.Request) -> web.Response:
        return web.Response()

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"version": PINNED})  # the release whose bytes it writes

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": model, "max_model_len": 131072, "root": model}]})

    async def completions(_: web.Request) -> web.Response:
        return web.json_response({"choices": [{"text": "x", "finish_reason": "length"}], "usage": usage})

    async def chat(request: web.Request) -> web.StreamResponse:
        asked = await request.json()
        if not asked.get("stream"):
            message = {"role": "assistant", "content": "x"}
            body = {"id": "c", "choices": [{"message": message, "finish_reason": "length"}], "usage": usage}
            return web.json_response({**body, "model": model})
        role, pieces, tail = rendered(min(int(asked.get("max_tokens") or tokens), tokens))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, piece in enumerate(pieces):
            await asyncio.sleep(first_s if i == 0 else interval_s)
            # As vLLM: the role chunk goes out with the first token, not before it (a client timing the first
            # chunk with choices, as vLLM's benchmark does, would otherwise see no time to first token at all).
            await response.write(role + piece if i == 0 else piece)
        await response.write(tail)
        return response

    application = web.Application()
    application.add_routes(
        [
            web.get("/health", health),
            web.get("/version", version),
            web.get("/v1/models", models),
            web.post("/v1/completions", completions),
            web.post("/v1/chat/completions", chat),
        ]
    )
    return application


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mistral-local bench synthetic-engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--first-token-ms", type=float, default=None, help="default: one interval")
    parser.add_argument("--model", required=True)
    options = parser.parse_args(argv)
    first = None if options.first_token_ms is None else options.first_token_ms / 1000
    service = app(options.model, options.tokens, options.interval_ms / 1000, first)
    web.run_app(service, host="127.0.0.1", port=options.port, print=None)


if __name__ == "__main__":
    cli()
