"""The stored keys' hashes on a real chDB store: the hash of a key about to be written is the
one the table's load computes, and other writers' keys are read from stored_keys."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.seen_keys import MARGIN_S, STORED_KEYS, SeenKeys, stored_key_rows
from flows.store import Store
from flows.store.base import KEY_HASH

TARGETS = (("raw_events", "event_id"), ("dead_letters", "dead_letter_id"))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.lists(st.text(max_size=40), min_size=1, max_size=50))
def test_a_new_keys_hash_is_the_one_the_load_reads_from_the_table(
    store: Store, keys: list[str]
) -> None:
    """Computed through Python() for new keys and from the column for stored ones: equal, in
    the keys' order, for any text (empty, non-ASCII, repeated)."""
    new = store.key_hashes(pa.array(keys, pa.string())).to_pylist()
    store.command("CREATE TABLE IF NOT EXISTS k (i UInt32, key String) ENGINE = Memory")
    store.command("TRUNCATE TABLE k")
    store.insert_arrow("k", pa.table({"i": pa.array(range(len(keys)), pa.uint32()), "key": keys}))
    column = store.query_arrow(f"SELECT {KEY_HASH}(key) AS h FROM k ORDER BY i").column(0)
    assert new == column.to_pylist()


def raw_rows(ids: list[str]) -> pa.Table:
    return pa.table({"event_id": pa.array(ids, pa.string()), "payload": ["{}"] * len(ids)})


def hashes(store: Store, ids: list[str]) -> np.ndarray:
    return store.key_hashes(pa.array(ids, pa.string())).to_numpy()


def test_the_load_holds_every_stored_key_and_a_refresh_adds_other_writers(store: Store) -> None:
    store.insert_arrow("raw_events", raw_rows(["a", "b"]))
    mine = SeenKeys.load(store, TARGETS, writer=1)
    assert mine.maybe_stored("raw_events", hashes(store, ["a", "b", "c"])).tolist() == [
        True,
        True,
        False,
    ]
    # Another writer stores "c" and records it; this writer's own rows are not read back.
    store.insert_arrow(STORED_KEYS, stored_key_rows(2, {"raw_events": hashes(store, ["c"])}))
    store.insert_arrow(STORED_KEYS, stored_key_rows(1, {"dead_letters": hashes(store, ["x"])}))
    mine.refresh(store)
    found = mine.maybe_stored("raw_events", hashes(store, ["a", "b", "c", "d"]))
    assert found.tolist() == [True, True, True, False]
    assert not mine.maybe_stored("dead_letters", hashes(store, ["x"])).any()


def test_a_key_stamped_before_the_last_read_within_the_margin_is_still_read(
    store: Store,
) -> None:
    """An insert stamped before a read but committed after it (in flight) is read next time."""
    mine = SeenKeys.load(store, TARGETS, writer=1)
    mine.refresh(store)
    late = stored_key_rows(2, {"raw_events": hashes(store, ["late"])})
    # Stamped half the margin before the last read, as the server would have when the insert
    # began; committed only now.
    stamp = store.query_arrow(
        "SELECT fromUnixTimestamp64Micro({t:Int64}, 'UTC') AS s",
        {"t": mine.read_since_us + int(MARGIN_S * 1_000_000) // 2},
    ).column(0)
    store.insert_arrow(STORED_KEYS, late.append_column("stored_at", stamp.take([0])))
    mine.refresh(store)
    assert mine.maybe_stored("raw_events", hashes(store, ["late"])).all()


def test_after_a_long_pause_the_set_is_reloaded_from_the_tables(store: Store) -> None:
    """stored_keys keeps a day of rows: a writer that has not read for an hour reloads."""
    mine = SeenKeys.load(store, TARGETS, writer=1)
    store.insert_arrow("raw_events", raw_rows(["stored while paused"]))  # no stored_keys row
    mine.refresh(store)
    assert not mine.maybe_stored("raw_events", hashes(store, ["stored while paused"])).any()
    mine.read_since_us -= 2 * 3600 * 1_000_000  # as if the last read was two hours ago
    mine.refresh(store)
    assert mine.maybe_stored("raw_events", hashes(store, ["stored while paused"])).all()
