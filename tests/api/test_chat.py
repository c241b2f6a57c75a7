"""The real engine behind the gateway, driven through the official OpenAI SDK."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from server.engine.profiles import load_profile
from server.settings import OPENROUTER_MODEL_ID
from tests.support.gateway_process import Gateway
from tests.support.helpers import WEATHER_TOOL, png_data_url

pytestmark = pytest.mark.engine

MODEL = OPENROUTER_MODEL_ID


def test_text_chat_with_system_prompt(client: openai.OpenAI) -> None:
    with_system = client.chat.completions.create(
        model=MODEL,
        max_tokens=8,
        temperature=0,
        messages=[{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hello"}],
    )
    without = client.chat.completions.create(
        model=MODEL,
        max_tokens=8,
        temperature=0,
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert with_system.choices[0].message.role == "assistant"
    assert with_system.choices[0].message.content
    assert with_system.usage is not None
    assert without.usage is not None
    assert with_system.usage.completion_tokens == 8
    # The system prompt reached the model: it is encoded as [SYSTEM_PROMPT]...[/SYSTEM_PROMPT] tokens.
    assert with_system.usage.prompt_tokens > without.usage.prompt_tokens + 4


def test_image_as_data_url(client: openai.OpenAI) -> None:
    def ask(width: int, height: int) -> int:
        r = client.chat.completions.create(
            model=MODEL,
            max_tokens=2,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "image_url", "image_url": {"url": png_data_url(width, height)}},
                    ],
                }
            ],
        )
        assert r.usage is not None
        return r.usage.prompt_tokens

    small, large = ask(56, 56), ask(300, 200)
    # Pixtral: 14-px patches merged 2x2 -> one token per 28x28 pixels, plus one break/end token per row.
    # 56x56 -> 2x2 image tokens + 2 row ends; 300x200 -> 11x8 image tokens + 8 row ends.
    assert large - small == (11 * 8 + 8) - (2 * 2 + 2)


def test_named_tool_choice_returns_a_tool_call(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        max_tokens=64,
        temperature=0,  # greedy: see test_streamed_tool_call_deltas_are_well_formed
        messages=[{"role": "user", "content": "What's the weather in Rome for 3 days?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    calls = r.choices[0].message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert args["city"] in {"Rome", "Paris", "Berlin"}
    assert 1 <= args["days"] <= 7
    assert len(call.id) == 9
    assert call.id.isalnum()


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Count to five."}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert text
    assert finish == ["length"]
    assert usage is not None
    assert usage.completion_tokens == 12
    assert usage.prompt_tokens > 0
    assert not chunks[-1].choices  # the usage chunk carries no choice


def test_json_schema_response_validates(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 1000},
            "unit": {"type": "string", "enum": ["kg", "lb"]},
        },
        "required": ["n", "unit"],
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model=MODEL,
        max_tokens=40,
        messages=[{"role": "user", "content": "Give a weight as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "weight", "schema": schema, "strict": True}},
    )
    data = json.loads(r.choices[0].message.content or "")
    assert set(data) == {"n", "unit"}
    assert isinstance(data["n"], int)
    assert 0 <= data["n"] <= 1000
    assert data["unit"] in {"kg", "lb"}


def test_prompt_longer_than_context_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            max_tokens=4,
            messages=[{"role": "user", "content": "hello " * 5000}],
        )
    assert info.value.status_code == 400
    assert "context length" in str(info.value)


def test_health_routes(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["engine"]["state"] == "ready"


def test_the_quick_start_serves_the_scaled_down_checkpoint_on_cpu_tiny(gateway: Gateway, tiny_model: Path) -> None:
    """`serve` with no profile and no model, on a machine with no GPU and no weights (conftest.py starts it so)."""
    argv = gateway.engine_api_server().cmdline()
    assert argv[argv.index("--model") + 1] == str(tiny_model)
    cpu_tiny = load_profile("cpu-tiny")
    assert argv[argv.index("--max-model-len") + 1] == str(cpu_tiny.max_model_len)
    assert "profile auto" in gateway.log_path.read_text() and "profile cpu-tiny" in gateway.log_path.read_text()


def test_engine_is_bound_to_loopback_and_needs_its_key(gateway: Gateway) -> None:
    engine = f"http://127.0.0.1:{gateway.engine_port}"
    assert httpx.get(f"{engine}/v1/models").status_code == 401
    listening = [c.laddr for c in gateway.engine_api_server().net_connections(kind="tcp") if c.status == "LISTEN"]
    assert gateway.engine_port in {a.port for a in listening}  # the engine's own socket is among them
    assert all(a.ip == "127.0.0.1" for a in listening), listening
