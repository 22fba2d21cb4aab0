"""Duplicates by event id: a repeat of the same event (same id, same content) is skipped; an
event reusing an id with other content is a conflicting duplicate, dead-lettered.

Content is the payload's bytes; ``raw_events.content_hash`` holds their SHA-256 (computed by
ClickHouse, migration 0020), so a check against the store reads 32 bytes per repeated id, and
only for ids already stored. Within a batch the payloads are compared directly.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.batches import dead_letter_table
from flows.clock import utc_now
from flows.store.base import Store
from flows.validation import DeadLetter

CONFLICTING_DUPLICATE = "conflicting_duplicate"


def content_hash(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def stored_hashes(store: Store, keys: pa.Array) -> dict[str, bytes]:
    """The content hash stored for each of ``keys`` present in raw_events."""
    if not len(keys):
        return {}
    found = store.stored_values("raw_events", "event_id", "content_hash", keys)
    # FixedString arrives as bytes from chDB and as str from the HTTP client
    return {
        key: h if isinstance(h, bytes) else h.encode("latin-1")
        for key, h in zip(
            found.column("event_id").to_pylist(),
            found.column("content_hash").to_pylist(),
            strict=True,
        )
    }


def conflicting_rows(raw: pa.Table, stored: dict[str, bytes]) -> np.ndarray:
    """Which rows of a raw_events table reuse an id, stored or earlier in the table, with
    other content. The usual batch (unique ids, none stored) is answered without a row loop."""
    ids = raw.column("event_id")
    mask = np.zeros(raw.num_rows, dtype=bool)
    unique = pc.count_distinct(ids, mode="all").as_py() == raw.num_rows
    if unique and not stored:
        return mask
    first: dict[str, bytes] = {}
    payloads = raw.column("payload")
    for i, key in enumerate(ids.to_pylist()):
        if key in stored or key in first:
            payload = payloads[i].as_py().encode()
            seen = stored.get(key) or first[key]
            mask[i] = content_hash(payload) != seen
        else:
            first[key] = content_hash(payloads[i].as_py().encode())
    return mask


def conflict_dead_letters(raw: pa.Table, mask: np.ndarray) -> pa.Table:
    """Dead-letter rows for the conflicting raw rows, received when the events were."""
    rows = raw.filter(pa.array(mask))
    letters = [
        DeadLetter(
            origin,
            CONFLICTING_DUPLICATE,
            f"event_id {key} was seen before with other content",
            payload.encode(),
        )
        for key, origin, payload in zip(
            rows.column("event_id").to_pylist(),
            rows.column("origin").to_pylist(),
            rows.column("payload").to_pylist(),
            strict=True,
        )
    ]
    table = dead_letter_table(letters, utc_now())
    at = table.schema.get_field_index("received_at")
    return table.set_column(at, "received_at", rows.column("received_at"))


def split_conflicts(
    store: Store, raw: pa.Table, maybe_stored: pa.Array
) -> tuple[pa.Table, pa.Table]:
    """raw_events rows without the conflicting duplicates, and those as dead-letter rows.
    ``maybe_stored`` holds every id of ``raw`` the store may hold (all, or what the writer's
    prefilter left); only those are looked up."""
    present = store.existing_keys("raw_events", "event_id", maybe_stored)
    stored = stored_hashes(store, present)
    mask = conflicting_rows(raw, stored)
    if not mask.any():
        return raw, raw.slice(0, 0).select([])
    return raw.filter(pa.array(~mask)), conflict_dead_letters(raw, mask)
