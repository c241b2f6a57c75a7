"""Run by tests/engine/test_vllm_releases.py in a subprocess whose vLLM is the release under test: parse each argv
(a JSON list of argument lists on stdin) with that release's own server argument parser and print what it made of
the flags this project sets, as JSON. Exits 2 with the parser's message when it refuses one."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from typing import Any

FIELDS = (
    "model", "uds", "host", "port", "tokenizer_mode", "config_format", "load_format", "tool_call_parser",
    "enable_auto_tool_choice", "enable_prompt_tokens_details", "allowed_media_domains", "served_model_name",
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "max_model_len", "limit_mm_per_prompt",
    "enable_prefix_caching", "gpu_memory_utilization", "quantization", "kv_cache_dtype", "max_num_seqs",
    "max_num_batched_tokens", "distributed_executor_backend", "enforce_eager", "structured_outputs_config",
)  # fmt: skip
PARSER_MODULES = (
    "vllm.entrypoints.common.cli_args",  # 0.33
    "vllm.entrypoints.launchers.cli_args",  # 0.32
    "vllm.entrypoints.openai.cli_args",  # 0.22
)


def plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is not there either
        return False


def main() -> None:
    import vllm
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    module = next(m for m in PARSER_MODULES if exists(m))
    make_arg_parser = importlib.import_module(module).make_arg_parser
    results = []
    for argv in json.load(sys.stdin):
        args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)  # type: ignore[no-untyped-call]
        results.append({name: plain(getattr(args, name, None)) for name in FIELDS})
    modules = {m: exists(m) for m in sys.argv[1:]}
    print(json.dumps({"version": vllm.__version__, "parsed": results, "modules": modules}))


if __name__ == "__main__":
    main()
