"""The requests a benchmark sends, built with the real Tekken tokenizer so their token lengths are exact, from a
fixed seed so two runs (or two targets) send the same requests.

Random prompts follow `vllm bench serve --dataset-name random`: an input length drawn uniformly from
[L(1-r), L(1+r)], an optional prefix shared by every request, and `ignore_eos` so outputs run to max_tokens.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mistral_common.protocol.instruct.chunk import ImageChunk, TextChunk
from mistral_common.protocol.instruct.messages import UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from PIL import Image

from server.checkpoint.tiny import tekken
from server.errors import ConfigError

# vLLM's ShareGPT filter (benchmarks/datasets: is_valid_sequence): too short or too long conversations are skipped.
SHAREGPT_MIN_TOKENS, SHAREGPT_MAX_PROMPT, SHAREGPT_MAX_TOTAL = 4, 1024, 2048


@dataclass(frozen=True)
class BenchRequest:
    content: str | list[dict[str, Any]]  # the user message: text, or text and image parts
    input_tokens: int  # of the content, by the Tekken tokenizer (images included); the chat template adds a few
    max_tokens: int

    def body(self, model: str, ignore_eos: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": self.content}],
            "max_tokens": self.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if ignore_eos:
            body["ignore_eos"] = True
        return body


class Tokenizer:
    """Mistral Small 3.1's Tekken tokenizer, from a tekken.json (the weights' own, or mistral-common's copy)."""

    def __init__(self, path: Path) -> None:
        self.mistral = MistralTokenizer.from_file(str(path))

    @classmethod
    def default(cls, cache_dir: Path) -> Tokenizer:
        """mistral-common's 131k Tekken vocabulary as Mistral Small 3.1 configures it, written once to the cache."""
        path = cache_dir / "tekken-v7.json"
        if not path.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(tekken()), encoding="utf-8")
        return cls(path)

    def encode(self, text: str) -> list[int]:
        return list(self.mistral.instruct_tokenizer.tokenizer.encode(text, bos=False, eos=False))

    def decode(self, ids: list[int]) -> str:
        return str(self.mistral.instruct_tokenizer.tokenizer.decode(ids))

    @property
    def first_normal_id(self) -> int:
        return int(self.mistral.instruct_tokenizer.tokenizer.num_special_tokens)

    @property
    def vocab_size(self) -> int:
        return int(self.mistral.instruct_tokenizer.tokenizer.n_words)

    def image_tokens(self, image: Image.Image) -> int:
        """What one image costs in the prompt: the chat encoding with it, less the encoding without it."""

        def length(content: list[Any]) -> int:
            request: ChatCompletionRequest[Any] = ChatCompletionRequest(messages=[UserMessage(content=content)])
            return len(self.mistral.encode_chat_completion(request).tokens)

        return length([TextChunk(text="x"), ImageChunk(image=image)]) - length([TextChunk(text="x")])


DRAWS = 20


def exact_text(tok: Tokenizer, rng: np.random.Generator, length: int) -> str:
    """Text of exactly `length` tokens: random ids, decoded, re-encoded and trimmed until the round trip holds.
    Some draws never settle (a merge and a split that undo each other); those start again from a new draw."""
    for _ in range(DRAWS):
        ids = rng.integers(tok.first_normal_id, tok.vocab_size, size=length).tolist()
        for _ in range(10):
            text = tok.decode(ids)
            again = tok.encode(text)
            if len(again) == length:
                return text
            # Merges shorten the text, splits lengthen it: top up or cut, then check again.
            ids = (
                again[:length]
                + rng.integers(tok.first_normal_id, tok.vocab_size, size=max(0, length - len(again))).tolist()
            )
    raise ConfigError(f"could not build a prompt of exactly {length} tokens")


def _lengths(rng: np.random.Generator, mean: int, ratio: float, n: int) -> list[int]:
    low, high = max(1, int(mean * (1 - ratio))), max(1, int(mean * (1 + ratio)))
    return [int(v) for v in rng.integers(low, high + 1, size=n)]


def random_requests(
    tok: Tokenizer,
    *,
    n: int,
    input_len: int,
    output_len: int,
    range_ratio: float,
    prefix_len: int,
    seed: int,
    content_seed: int | None = None,
) -> list[BenchRequest]:
    """`content_seed` varies the tokens but not the lengths (see compare.py: why two targets get different text)."""
    rng = np.random.default_rng(seed)
    lengths = zip(_lengths(rng, input_len, range_ratio, n), _lengths(rng, output_len, range_ratio, n), strict=True)
    text_rng = np.random.default_rng(seed if content_seed is None else content_seed)
    prefix = exact_text(tok, text_rng, prefix_len) if prefix_len else ""
    out = []
    for in_len, out_len in lengths:
        text = prefix + exact_text(tok, text_rng, in_len)
        out.append(BenchRequest(text, len(tok.encode(text)), out_len))
    return out


def _png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_requests(
    tok: Tokenizer, *, n: int, size: tuple[int, int], images: int, input_len: int, output_len: int, seed: int
) -> list[BenchRequest]:
    """Text of `input_len` tokens and `images` noise images of `size` pixels per request."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        text = exact_text(tok, rng, input_len)
        pics = [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(images)]
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
        parts += [{"type": "image_url", "image_url": {"url": _png_data_url(p)}} for p in pics]
        cost = input_len + sum(tok.image_tokens(p) for p in pics)
        out.append(BenchRequest(parts, cost, output_len))
    return out


def sharegpt_requests(tok: Tokenizer, path: Path, *, n: int, output_len: int | None, seed: int) -> list[BenchRequest]:
    """The first human turn of each conversation; the reply's length (or `output_len`) as max_tokens."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the ShareGPT file {path}: {exc}") from exc
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data)).tolist()
    out: list[BenchRequest] = []
    for i in order:
        turns = data[i].get("conversations", []) if isinstance(data[i], dict) else []
        if len(turns) < 2:
            continue
        prompt, reply = str(turns[0].get("value", "")), str(turns[1].get("value", ""))
        p_len, r_len = len(tok.encode(prompt)), output_len or len(tok.encode(reply))
        if p_len < SHAREGPT_MIN_TOKENS or r_len < SHAREGPT_MIN_TOKENS:
            continue
        if output_len is None and (p_len > SHAREGPT_MAX_PROMPT or p_len + r_len > SHAREGPT_MAX_TOTAL):
            continue
        out.append(BenchRequest(prompt, p_len, r_len))
        if len(out) == n:
            break
    if not out:
        raise ConfigError(f"{path} holds no usable ShareGPT conversation (a list of {{'conversations': [...]}})")
    return out
