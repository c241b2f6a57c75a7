"""Every kind of answer, parsed by OpenRouter's official TypeScript SDK (`@openrouter/sdk`, pinned in
tests/sdk_ts/package-lock.json and installed by `make setup`), which validates answers against its own schemas:
the streaming it used to fail (`system_fingerprint: null` in chunks) among them. tests/sdk_ts/parse.mjs makes the
calls; this test runs it against the real engine and checks what it read."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.settings import OPENROUTER_MODEL_ID as MODEL
from tests.support.gateway_process import Gateway
from tests.support.helpers import png_data_url

pytestmark = pytest.mark.engine

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk_ts"


@pytest.fixture(scope="module")
def parsed(gateway: Gateway) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the TypeScript SDK's tests (make setup says how to get it)"
    assert (SDK_DIR / "node_modules" / "@openrouter" / "sdk").is_dir(), "run `make setup` (it installs the SDK)"
    given = json.dumps({"url": gateway.url, "model": MODEL, "image": png_data_url()})
    done = subprocess.run(
        [node, "parse.mjs"], input=given, capture_output=True, text=True, cwd=SDK_DIR, timeout=300, check=True
    )
    results: dict[str, Any] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize("check", ["chat", "chatStream", "tools", "models", "account", "responses", "error400"])
def test_the_sdk_parses_the_answer(parsed: dict[str, Any], check: str) -> None:
    assert parsed[check]["ok"], parsed[check].get("error")


def test_what_the_sdk_read(parsed: dict[str, Any]) -> None:
    values = {name: result["value"] for name, result in parsed.items()}
    assert values["chat"]["id"].startswith("gen-") and values["chat"]["completionTokens"] == 3
    assert values["chatStream"]["text"] and values["chatStream"]["completionTokens"] == 4
    assert values["tools"] == {"sent": ["city", "days"], "streamed": ["city", "days"]}
    assert values["models"] == {"ids": [MODEL], "count": 1, "endpoints": 1}
    assert values["account"]["generationTokens"] == 2 and values["account"]["activityRows"] >= 1
    assert values["responses"]["outputTokens"] == 3
    assert values["error400"]["raised"] == "BadRequestResponseError" and values["error400"]["status"] == 400
