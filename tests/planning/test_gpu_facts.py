"""`mistral-local plan --gpu-facts` (server/planning/gpu_facts.py): what NVML and nvidia-smi each read and the plan
`serve --profile auto` would launch, as JSON; it succeeds only when both read the same GPUs, and says why either
read nothing instead of failing with a traceback (a machine with no driver)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.planning import gpu_facts, hardware
from server.planning.hardware import parse_nvidia_smi

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpus"


def facts(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = gpu_facts.main()
    return status, json.loads(capsys.readouterr().out)


def test_a_recorded_h200_gives_both_reads_and_the_auto_plan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = json.loads((FIXTURES / "h200.nvml.json").read_text())["gpus"]
    smi = parse_nvidia_smi((FIXTURES / "h200.nvidia-smi.csv").read_text())
    monkeypatch.setattr(hardware, "nvml_records", lambda: records)
    monkeypatch.setattr(gpu_facts, "nvidia_smi_gpus", lambda: (smi, None))
    status, report = facts(capsys)
    assert status == 0 and report["detected_by"] == "nvml" and report["nvml_problem"] is None
    assert [g["name"] for g in report["nvml"]] == [g["name"] for g in report["nvidia_smi"]] == ["NVIDIA H200"]
    assert report["plan"]["tensor_parallel"] == 1 and report["plan"]["max_model_len"] == 128000


def test_a_machine_without_a_driver_is_told_why_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_library() -> list[dict[str, Any]]:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    monkeypatch.setattr(hardware, "nvml_records", no_library)
    monkeypatch.setattr(hardware, "nvidia_smi_gpus", lambda: ([], "nvidia-smi is not on PATH"))
    monkeypatch.setattr(gpu_facts, "nvidia_smi_gpus", lambda: ([], "nvidia-smi is not on PATH"))
    status, report = facts(capsys)
    assert status == 1 and "plan" not in report
    assert "libnvidia-ml" in report["nvml_problem"] and report["nvidia_smi_problem"] == "nvidia-smi is not on PATH"
