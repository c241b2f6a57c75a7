"""Every generation's record (server/generation/recorder.py): the request's earlier attempts with this one last, the
engine's tokens in the metrics only when the engine ran it, and the admission hold released with what was used,
also when the record cannot be kept."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest

from server.generation.outbound import Envelope
from server.generation.recorder import Call, Ending, Recorder, attempt
from server.schemas.record import GenerationRecord
from server.telemetry.metrics import Metrics

USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "cost": 0.25}


class Kept:
    def __init__(self, fails: bool = False) -> None:
        self.records: list[GenerationRecord] = []
        self.fails = fails

    def add(self, record: GenerationRecord) -> None:
        if self.fails:
            raise OSError("disk full")
        self.records.append(record)


class Hold:
    def __init__(self) -> None:
        self.released: list[int | None] = []

    def release(self, used_tokens: int | None = None) -> None:
        self.released.append(used_tokens)


def call(**fields: Any) -> Call:
    return Call(Envelope("gen-1", 0, "m", "Local"), "team", {}, key_id="id-team", **fields)


def tokens_out(metrics: Metrics) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("mistral_local_tokens_total") and 'direction="out"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_generation_is_recorded_after_its_earlier_attempts_and_releases_its_hold() -> None:
    kept, metrics, hold = Kept(), Metrics(), Hold()
    earlier = [attempt("other/model", "upstream", 502)]
    Recorder(kept, metrics).finish(  # type: ignore[arg-type]
        call(attempts=earlier), Ending(USAGE, finish="stop", native="stop"), hold
    )
    (record,) = kept.records
    assert record.id == "gen-1" and record.key_id == "id-team" and record.finish_reason == "stop"
    assert "other/model" in record.attempts and record.attempts.index("other/model") < record.attempts.index('"m"')
    assert hold.released == [12] and tokens_out(metrics) == 5


def test_an_answer_from_elsewhere_is_recorded_but_not_counted_as_the_engines() -> None:
    kept, metrics = Kept(), Metrics()
    Recorder(kept, metrics).finish(  # type: ignore[arg-type]
        call(), Ending(USAGE), engine=False
    )
    assert len(kept.records) == 1 and tokens_out(metrics) == 0


def test_the_hold_is_released_when_the_record_cannot_be_kept() -> None:
    hold = Hold()
    with pytest.raises(OSError, match="disk full"):
        Recorder(Kept(fails=True), Metrics()).finish(  # type: ignore[arg-type]
            call(), Ending(USAGE), hold
        )
    assert hold.released == [None]  # released, without a count it could not make
