"""Generation records as the tests store them."""

from __future__ import annotations

import time

from server.record_store import RecordStore
from server.schemas.record import GenerationRecord


def record(
    gen_id: str, label: str | None = "alice", tokens: int = 10, cost: float = 0.5, key_id: str | None = None
) -> GenerationRecord:
    """`key_id`: the key's id (by default one made from the label)."""
    return GenerationRecord.ended_now(
        usage={"prompt_tokens": tokens // 2, "completion_tokens": tokens - tokens // 2, "cost": cost},
        started=time.monotonic(),
        first_token_at=None,
        attempts=[],
        id=gen_id,
        model="m",
        provider="Local",
        api_type="completions",
        num_images=0,
        streamed=False,
        cancelled=False,
        finish_reason="stop",
        native_finish_reason="stop",
        key_label=label,
        key_id=key_id or (f"id-{label}" if label is not None else None),
    )


async def written(store: RecordStore, *recs: GenerationRecord) -> None:
    for r in recs:
        store.add(r)
    await store.flush()
