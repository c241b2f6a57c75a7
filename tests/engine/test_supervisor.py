"""An engine that never becomes ready is not restarted forever: after `start_attempts` tries the supervisor fails
with a diagnosis from the engine's own output. Each case runs an engine command that fails the way vLLM does (the
import error and the unreadable weights for real; the GPU failures print vLLM's and torch's exact messages)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from pathlib import Path

import pytest
import transformers

from server.engine.diagnosis import Context, installed_version
from server.engine.launcher import EngineCommand
from server.engine.lifecycle import EngineState
from server.engine.supervisor import Backoff, EngineSupervisor

QUICK = Backoff(first_s=0.05, factor=1.0, max_s=0.05)


def failing_engine(tmp_path: Path, script: str, attempts: int = 3) -> tuple[EngineSupervisor, Path]:
    """A supervisor whose engine runs `script`; each start appends a line to the returned file."""
    starts = tmp_path / "starts"
    program = f"open({str(starts)!r}, 'a').write('start\\n')\n" + textwrap.dedent(script)
    url = f"unix:{tmp_path / 'engine.sock'}"

    def command() -> EngineCommand:
        return EngineCommand(argv=(sys.executable, "-c", program), env={}, url=url, api_key="k")

    context = Context("h200-x1", "cuda", "/models/mistral-small-3.1", installed_version)
    supervisor = EngineSupervisor(
        command, url, "m", context, start_timeout_s=60, start_attempts=attempts, backoff=QUICK
    )
    return supervisor, starts


def run_until_failed(supervisor: EngineSupervisor, timeout_s: float = 300) -> None:
    async def run() -> None:
        await supervisor.start()
        try:
            await asyncio.wait_for(supervisor.failed.wait(), timeout_s)
        finally:
            await supervisor.stop()

    asyncio.run(run())


def test_an_import_error_names_the_module_and_the_installed_version(tmp_path: Path) -> None:
    """vLLM 0.22 on transformers 5.17: `PixtralRotaryEmbedding` is gone. The same failure, for real."""
    supervisor, starts = failing_engine(
        tmp_path, "from transformers.models.pixtral.modeling_pixtral import PixtralRotaryEmbeddingGone"
    )
    run_until_failed(supervisor)
    assert starts.read_text().count("start") == 3
    assert supervisor.state is EngineState.STOPPED and supervisor.failed.is_set()
    why = supervisor.last_failure or ""
    assert "cannot import PixtralRotaryEmbeddingGone from transformers.models.pixtral.modeling_pixtral" in why
    assert f"transformers {transformers.__version__} is installed" in why


def test_a_missing_module_is_named(tmp_path: Path) -> None:
    supervisor, _ = failing_engine(tmp_path, "import flash_attn_nowhere", attempts=1)
    run_until_failed(supervisor)
    assert "No module named 'flash_attn_nowhere'" in (supervisor.last_failure or "")
    assert "flash-attn-nowhere is not installed" in (supervisor.last_failure or "")


def test_out_of_gpu_memory_names_the_profile_and_what_to_change(tmp_path: Path) -> None:
    vllm_message = (
        "ValueError: To serve at least one request with the model's max seq len (128000), (19.53 GiB KV cache is "
        "needed, which is larger than the available KV cache memory (9.77 GiB). Based on the available memory, the "
        "estimated maximum model length is 64000. Try increasing `gpu_memory_utilization` (which also controls CPU "
        "memory on the CPU backend) or decreasing `max_model_len` when initializing the engine."
    )
    supervisor, _ = failing_engine(
        tmp_path, f"import sys\nprint('(EngineCore pid=1) ERROR ' + {vllm_message!r})\nsys.exit(1)", attempts=2
    )
    run_until_failed(supervisor)
    why = supervisor.last_failure or ""
    assert "ran out of GPU memory with profile h200-x1" in why
    assert "a context of 64000 tokens fits" in why
    assert "FP8" in why


def test_torch_out_of_memory(tmp_path: Path) -> None:
    message = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity"
    supervisor, _ = failing_engine(tmp_path, f"import sys\nprint({message!r})\nsys.exit(1)", attempts=1)
    run_until_failed(supervisor)
    assert "ran out of GPU memory with profile h200-x1" in (supervisor.last_failure or "")


def test_no_gpu(tmp_path: Path) -> None:
    supervisor, _ = failing_engine(
        tmp_path, "import sys\nprint('RuntimeError: No CUDA GPUs are available')\nsys.exit(1)", attempts=1
    )
    run_until_failed(supervisor)
    why = supervisor.last_failure or ""
    assert "found no usable GPU (No CUDA GPUs are available) for profile h200-x1" in why


def test_unreadable_weights_for_real(tmp_path: Path) -> None:
    """safetensors reading a truncated file, as vLLM's loader does."""
    weights = tmp_path / "consolidated.safetensors"
    weights.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": ')  # a header that ends early
    script = f"from safetensors import safe_open\nsafe_open({str(weights)!r}, 'pt')"
    supervisor, _ = failing_engine(tmp_path, script, attempts=1)
    run_until_failed(supervisor)
    why = supervisor.last_failure or ""
    assert "could not read the weights in /models/mistral-small-3.1" in why
    assert "mistral-local check-model /models/mistral-small-3.1" in why


def test_an_unknown_failure_gives_its_last_error_line(tmp_path: Path) -> None:
    supervisor, _ = failing_engine(tmp_path, "raise KeyError('invalid tool call parser: nope')", attempts=1)
    run_until_failed(supervisor)
    assert "its last error: KeyError: 'invalid tool call parser: nope'" in (supervisor.last_failure or "")


def test_a_config_validation_error_keeps_its_detail(tmp_path: Path) -> None:
    """vLLM checks its config with pydantic: the reason is on the line after the exception's."""
    script = (
        "from pydantic import BaseModel, field_validator\n"
        "class ModelConfig(BaseModel):\n"
        "    max_model_len: int\n"
        "    @field_validator('max_model_len')\n"
        "    def fits(cls, v: int) -> int:\n"
        "        raise ValueError(f'User-specified max_model_len ({v}) is greater than the derived max_model_len')\n"
        "ModelConfig(max_model_len=4000000)"
    )
    supervisor, _ = failing_engine(tmp_path, script, attempts=1)
    run_until_failed(supervisor)
    why = supervisor.last_failure or ""
    assert "ValidationError: 1 validation error for ModelConfig" in why
    assert "User-specified max_model_len (4000000) is greater than the derived max_model_len" in why


def test_a_line_over_64_kib_does_not_stop_supervision(tmp_path: Path) -> None:
    """asyncio's line reader raised on it, which ended supervision after one start: no restart, no diagnosis."""
    script = "import sys\nprint('x' * 70000)\nprint('RuntimeError: No CUDA GPUs are available')\nsys.exit(1)"
    supervisor, starts = failing_engine(tmp_path, script)
    run_until_failed(supervisor)
    assert starts.read_text().count("start") == 3
    assert "found no usable GPU" in (supervisor.last_failure or "")
    assert supervisor.last_log_line == "RuntimeError: No CUDA GPUs are available"


def test_readiness_shows_the_failure_while_the_engine_is_tried_again(tmp_path: Path) -> None:
    supervisor, _ = failing_engine(
        tmp_path, "import sys, time\nprint('RuntimeError: No CUDA GPUs are available')\nsys.exit(1)", attempts=50
    )

    async def run() -> str | None:
        await supervisor.start()
        try:
            deadline = time.monotonic() + 30
            while supervisor.last_failure is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a field
                await asyncio.sleep(0.05)
            assert supervisor.state in (EngineState.RESTARTING, EngineState.STARTING)
            return supervisor.last_failure
        finally:
            await supervisor.stop()

    assert "found no usable GPU" in (asyncio.run(run()) or "")


@pytest.mark.parametrize("attempts", [1, 2])
def test_the_number_of_attempts_is_the_operators(tmp_path: Path, attempts: int) -> None:
    supervisor, starts = failing_engine(tmp_path, "import sys\nsys.exit(3)", attempts=attempts)
    run_until_failed(supervisor)
    assert starts.read_text().count("start") == attempts
