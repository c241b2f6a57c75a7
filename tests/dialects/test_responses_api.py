"""OpenAI's Responses API against the real engine, through the OpenAI SDK as a client would use it with OpenRouter:
`responses.create` and `responses.stream`, text, images, function tools and their outputs, structured output; and
OpenRouter's statelessness (`store`, `previous_response_id`: 400)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from server.settings import OPENROUTER_MODEL_ID as MODEL
from tests.support.gateway_process import Gateway
from tests.support.helpers import WEATHER_TOOL, long_result, png_data_url

pytestmark = pytest.mark.engine

TOOL: Any = {"type": "function", **WEATHER_TOOL["function"]}  # Responses tools are flat
FORCE: Any = {"type": "function", "name": "get_weather"}


def test_create_answers_text_with_usage_and_a_generation_record(api: openai.OpenAI, gateway: Gateway) -> None:
    r = api.responses.create(model=MODEL, input="Say hello.", instructions="Be brief.", max_output_tokens=5)
    assert r.object == "response" and r.id.startswith("gen-") and r.model == MODEL
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    (message,) = r.output
    assert message.type == "message" and message.role == "assistant"
    assert r.output_text and message.content[0].type == "output_text"
    assert r.usage is not None and r.usage.output_tokens == 5
    assert r.usage.total_tokens == r.usage.input_tokens + 5
    record = httpx.get(f"{gateway.url}/api/v1/generation", params={"id": r.id}).json()["data"]
    assert record["tokens_completion"] == 5


def test_stream_events_build_the_same_response(api: openai.OpenAI) -> None:
    """Cut at max_output_tokens, the stream ends with `response.incomplete`, as OpenAI's does (the SDK's
    get_final_response is for `response.completed` only: the last event carries the response)."""
    kinds: list[str] = []
    deltas: list[str] = []
    with api.responses.stream(model=MODEL, input="Tell a story.", max_output_tokens=8) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert event.type == "response.incomplete"
    final = event.response
    assert kinds.index("response.output_item.added") < kinds.index("response.output_text.delta")
    assert kinds.count("response.output_item.done") == 1
    assert final.output_text == "".join(deltas) and deltas
    assert final.usage is not None and final.usage.output_tokens == 8


def test_raw_stream_is_numbered_and_ends_without_done(gateway: Gateway) -> None:
    body = {"model": MODEL, "input": "hi", "max_output_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/api/v1/responses", json=body, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream") and r.headers["x-generation-id"]
        lines = list(r.iter_lines())
    events = [json.loads(x[len("data: ") :]) for x in lines if x.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    names = [x[len("event: ") :] for x in lines if x.startswith("event: ")]
    assert names == [e["type"] for e in events]
    assert "data: [DONE]" not in lines


def test_function_tools_and_their_outputs(api: openai.OpenAI) -> None:
    first = api.responses.create(
        model=MODEL, input="Weather in Rome?", tools=[TOOL], tool_choice=FORCE, max_output_tokens=64, temperature=0
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert set(json.loads(calls[0].arguments)) == {"city", "days"}
    # The client sends the call back with its output, under a call id of its own making.
    history: list[Any] = [
        {"role": "user", "content": "Weather in Rome?"},
        {"type": "function_call", "call_id": "call_client_made_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_client_made_1", "output": '{"temp_c": 21}'},
    ]
    second = api.responses.create(model=MODEL, input=history, tools=[TOOL], max_output_tokens=4)
    history[2] = {**history[2], "output": long_result()}
    padded = api.responses.create(model=MODEL, input=history, tools=[TOOL], max_output_tokens=1)
    assert second.usage is not None and padded.usage is not None
    assert padded.usage.input_tokens >= second.usage.input_tokens + 150  # the output was read


def test_streamed_function_call(api: openai.OpenAI) -> None:
    with api.responses.stream(
        model=MODEL, input="Weather in Paris?", tools=[TOOL], tool_choice=FORCE, max_output_tokens=64, temperature=0
    ) as stream:
        argument_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert "".join(argument_deltas) == call.arguments
    assert set(json.loads(call.arguments)) == {"city", "days"}


def test_an_image_input_counts_its_tokens(api: openai.OpenAI) -> None:
    text_only = api.responses.create(model=MODEL, input="What is this?", max_output_tokens=1)
    content: Any = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": png_data_url(), "detail": "auto"},
    ]
    with_image = api.responses.create(model=MODEL, input=[{"role": "user", "content": content}], max_output_tokens=1)
    assert with_image.usage is not None and text_only.usage is not None
    assert with_image.usage.input_tokens >= text_only.usage.input_tokens + 96  # a 300x200 image is 96 tokens


def test_structured_output(api: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"unit": {"type": "string", "enum": ["kg", "lb"]}},
        "required": ["unit"],
        "additionalProperties": False,
    }
    fmt: Any = {"format": {"type": "json_schema", "name": "weight", "schema": schema, "strict": True}}
    r = api.responses.create(model=MODEL, input="A unit of weight, as JSON.", text=fmt, max_output_tokens=30)
    assert json.loads(r.output_text)["unit"] in {"kg", "lb"}


@pytest.mark.parametrize(
    "stateful",
    [{"store": True}, {"previous_response_id": "gen-0-earlier"}, {"conversation": "conv_1"}, {"background": True}],
)
def test_stateful_requests_are_refused(api: openai.OpenAI, stateful: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        api.responses.create(model=MODEL, input="hi", max_output_tokens=1, **stateful)
    assert "stateless" in str(info.value)


def test_hosted_tools_and_unknown_items_are_a_clear_400(gateway: Gateway) -> None:
    url = f"{gateway.url}/api/v1/responses"
    r = httpx.post(url, json={"model": MODEL, "input": "hi", "tools": [{"type": "web_search_preview"}]})
    assert r.status_code == 400 and "only function tools" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": MODEL, "input": [{"type": "computer_call_output"}]})
    assert r.status_code == 400 and "'computer_call_output' is not supported" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": MODEL})
    assert r.status_code == 400
