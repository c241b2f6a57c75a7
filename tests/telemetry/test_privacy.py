"""No prompt or completion text in logs, metrics or the database: a canary sent every way (chat with text, images
and tools, legacy completions, Responses, Messages, tokenize, a PDF; errors that echo it) must appear nowhere: not
in any test gateway's log (gateways, workers and the engines they launched), the records or the metrics."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from tests.support.gateway_process import CACHE_DIR, OUTPUT_DIR, Gateway
from tests.support.helpers import png_data_url, post, wait_until_stored
from tests.support.pdfs import file_part

pytestmark = pytest.mark.engine
CANARY = f"CANARY{secrets.token_hex(6)}"


def test_canary_is_never_logged_or_stored(gateway: Gateway) -> None:
    tool_args = json.dumps({"city": CANARY})
    sent = [
        post(gateway.url, {"messages": [{"role": "user", "content": f"My secret is {CANARY}"}], "max_tokens": 4}),
        post(
            gateway.url,
            {
                "max_tokens": 2,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": f"alt: {CANARY}"},
                            {"type": "image_url", "image_url": {"url": png_data_url(40, 40)}},
                        ],
                    }
                ],
            },
        ),
        post(
            gateway.url,
            {
                "max_tokens": 2,
                "stream": True,
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{CANARY}",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": tool_args},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": f"call_{CANARY}", "content": CANARY},
                    {"role": "user", "content": "thanks"},
                ],
            },
        ),
        # Errors that echo the canary back to the client must not write it anywhere.
        post(gateway.url, {"model": f"{CANARY}/model", "messages": [{"role": "user", "content": "x"}]}),
        post(gateway.url, {"messages": [{"role": "user", "content": CANARY}], "temperature": CANARY}),
        post(
            gateway.url,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{CANARY}"}}],
                    }
                ]
            },
        ),
        post(gateway.url, {"messages": [{"role": "user", "content": CANARY * 2000}], "max_tokens": 4000}),
    ]
    assert [r.status_code for r in sent] == [200, 200, 200, 400, 400, 400, 400]
    # Every other route that takes text, and a PDF read by the file-parser.
    other_routes = [
        post(gateway.url, {"prompt": f"My secret is {CANARY}", "max_tokens": 2}, path="/api/v1/completions"),
        post(gateway.url, {"input": f"My secret is {CANARY}", "max_output_tokens": 16}, path="/api/v1/responses"),
        post(
            gateway.url, {"max_tokens": 2, "messages": [{"role": "user", "content": CANARY}]}, path="/api/v1/messages"
        ),
        post(
            gateway.url, {"messages": [{"role": "user", "content": [file_part(f"Secret {CANARY}")]}], "max_tokens": 2}
        ),
    ]
    assert [r.status_code for r in other_routes] == [200, 200, 200, 200], [r.text for r in other_routes]
    tokenized = post(gateway.url, {"messages": [{"role": "user", "content": CANARY}]}, path="/api/v1/tokenize")
    assert tokenized.status_code == 200
    metrics = httpx.get(f"{gateway.url}/metrics").text
    generated = {r.headers["x-generation-id"] for r in [*sent[:3], *other_routes]}
    wait_until_stored(CACHE_DIR / "generations.sqlite3", generated)
    places = [*OUTPUT_DIR.glob("*.log"), *CACHE_DIR.glob("generations.sqlite3*")]
    assert any(p.suffix == ".log" for p in places) and any("sqlite3" in p.name for p in places)
    leaks = [str(p) for p in places if CANARY.encode() in p.read_bytes()]
    assert CANARY not in metrics
    assert leaks == []


def user(content: object) -> dict[str, object]:
    return {"role": "user", "content": content}
