"""Workloads have the token lengths they claim (by the real Tekken tokenizer) and repeat with the seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from server.bench.workload import Tokenizer, image_requests, random_requests, sharegpt_requests
from server.errors import ConfigError


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return Tokenizer.default(tmp_path_factory.mktemp("tok"))


def test_random_prompts_have_exact_lengths_and_repeat(tok: Tokenizer) -> None:
    reqs = random_requests(tok, n=12, input_len=200, output_len=40, range_ratio=0.25, prefix_len=0, seed=7)
    for r in reqs:
        assert isinstance(r.content, str)
        assert len(tok.encode(r.content)) == r.input_tokens
        assert 150 <= r.input_tokens <= 250 and 30 <= r.max_tokens <= 50
    assert len({r.input_tokens for r in reqs}) > 1
    assert reqs == random_requests(tok, n=12, input_len=200, output_len=40, range_ratio=0.25, prefix_len=0, seed=7)
    other = random_requests(
        tok, n=12, input_len=200, output_len=40, range_ratio=0.25, prefix_len=0, seed=7, content_seed=99
    )
    assert [r.max_tokens for r in other] == [r.max_tokens for r in reqs]
    assert all(a.content != b.content for a, b in zip(other, reqs, strict=True))


def test_draws_that_never_settle_are_drawn_again(tok: Tokenizer) -> None:
    """Seed 0 holds, among 512 prompts of 32 tokens, draws whose round trip oscillates (once a ConfigError)."""
    reqs = random_requests(tok, n=512, input_len=32, output_len=8, range_ratio=0, prefix_len=0, seed=0)
    assert all(isinstance(r.content, str) and len(tok.encode(r.content)) == 32 for r in reqs)


def test_a_shared_prefix_starts_every_prompt(tok: Tokenizer) -> None:
    reqs = random_requests(tok, n=4, input_len=50, output_len=8, range_ratio=0, prefix_len=64, seed=1)
    texts = [r.content for r in reqs if isinstance(r.content, str)]
    prefix = tok.decode(tok.encode(texts[0])[:64])
    assert all(t.startswith(prefix) for t in texts)


def test_image_requests_cost_what_the_tokenizer_says(tok: Tokenizer) -> None:
    (req,) = image_requests(tok, n=1, size=(448, 448), images=2, input_len=10, output_len=4, seed=0)
    assert isinstance(req.content, list) and len(req.content) == 3
    # 448 px / 14 = 32 patches, merged 2x2: 16 rows of 16 tokens plus a break each = 272 per image.
    assert tok.image_tokens(Image.new("RGB", (448, 448))) == 272
    assert req.input_tokens == 10 + 2 * 272
    assert req.content[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_sharegpt_uses_the_first_turn_and_vllms_filter(tok: Tokenizer, tmp_path: Path) -> None:
    convs = [
        {"conversations": [{"from": "human", "value": "Tell me about the sea in a few words please"},
                           {"from": "gpt", "value": "The sea is wide, deep and full of life everywhere."}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "Hello there, how are you?"}]},
        {"conversations": [{"from": "human", "value": "only one turn"}]},
    ]  # fmt: skip
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(convs))
    (req,) = sharegpt_requests(tok, path, n=10, output_len=None, seed=0)
    assert req.content == "Tell me about the sea in a few words please"
    assert req.max_tokens == len(tok.encode(convs[0]["conversations"][1]["value"]))
    path.write_text("[]")
    with pytest.raises(ConfigError, match="no usable ShareGPT conversation"):
        sharegpt_requests(tok, path, n=10, output_len=None, seed=0)
