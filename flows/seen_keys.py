"""The keys each target table holds, as an exact in-memory prefilter for the writer's probe.

A table ordered by a random id keeps fresh ids inside every granule's key range, so asking the
store "which of these ids do you hold?" reads as many granules as the batch has ids, up to the
whole key column: the cost of that probe grows with the store. The writer asks only about keys
whose hash this set holds (real repeats, or a rare 64-bit collision); a key whose hash is absent
is certainly new. So the writer's answer stays exactly the store's, at any distance in event
time or rows, as long as the set holds every stored key's hash. It does so by:

- loading every key's hash from the tables themselves when the writer connects, after the
  journal is completed (hashes computed by ClickHouse, ``KEY_HASH``, as are the new keys');
- adding the keys of each write it applies;
- reading, before each write, the keys other writers stored since its last read
  (``stored_keys``, migration 0300, written through the journal before the tables), from the
  server's clock, less ``MARGIN_S`` for inserts stamped before they committed.

What remains is what an exact probe has too: two writers inserting the same new key at the
same instant both find it absent. And an insert of ``stored_keys`` in flight longer than the
margin (stamped, then committed more than ``MARGIN_S`` later) would be missed by the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flows.hash_set import Hashes, HashSet
from flows.store.base import KEY_HASH, Store

STORED_KEYS = "stored_keys"
# How long an insert into stored_keys may stay between its stamp (the server's now64() when it
# forms the block) and its commit and still be seen by the next read of every other writer.
MARGIN_S = 60.0
# stored_keys keeps a day of rows (its TTL); a writer that has not read them for this long
# reloads from the tables instead.
RELOAD_AFTER_S = 3600.0
_MICROS = 1_000_000

_NOW = "SELECT toUnixTimestamp64Micro(now64(6)) AS now"
# One row whatever matches: the server's time as the read began, and the keys found.
_OTHERS_SINCE = f"""
SELECT toUnixTimestamp64Micro(now64(6)) AS now, groupArray(target) AS targets,
    groupArray(key_hash) AS hashes
FROM {STORED_KEYS}
WHERE writer != {{writer:UInt64}} AND stored_at >= fromUnixTimestamp64Micro({{since:Int64}}, 'UTC')
"""


def new_writer_id() -> int:
    """A writer's id in stored_keys: random, so processes need not agree on one."""
    return uuid.uuid4().int >> 64


def _server_now_us(store: Store) -> int:
    return int(store.query_arrow(_NOW).column(0)[0].as_py())


def _hashes(column: pa.ChunkedArray | pa.Array) -> Hashes:
    return np.asarray(column.to_numpy(), np.uint64)


def stored_key_rows(writer: int, written: dict[str, Hashes]) -> pa.Table:
    """stored_keys rows for the keys a write inserts, per target table."""
    targets = [np.full(len(h), name, dtype=object) for name, h in written.items()]
    hashes = [h for h in written.values()]
    return pa.table(
        {
            "target": pa.array(np.concatenate(targets) if targets else [], pa.string()),
            "key_hash": pa.array(np.concatenate(hashes) if hashes else [], pa.uint64()),
            "writer": pa.array(np.full(sum(map(len, hashes)), writer, np.uint64), pa.uint64()),
        }
    )


@dataclass
class SeenKeys:
    """Per target table, the hashes of every key it holds; refreshed from other writers."""

    writer: int
    targets: tuple[tuple[str, str], ...]
    sets: dict[str, HashSet]
    read_since_us: int  # the server time from which other writers' keys are still to be read

    @staticmethod
    def load(store: Store, targets: Iterable[tuple[str, str]], writer: int) -> SeenKeys:
        """Every key the tables hold now; whatever is stored during the load, a refresh reads."""
        targets = tuple(targets)
        began = _server_now_us(store)
        sets = {
            # Sorted here, not by ClickHouse: numpy sorts five million hashes in 0.09 s, the
            # query's ORDER BY took 0.9 s. The set's own (stable) sort then finds one run.
            table: HashSet(
                np.sort(
                    _hashes(store.query_arrow(f"SELECT {KEY_HASH}({key}) FROM {table}").column(0))
                )
            )
            for table, key in targets
        }
        return SeenKeys(writer, targets, sets, began - int(MARGIN_S * _MICROS))

    def refresh(self, store: Store) -> None:
        """Add what other writers stored since the last read (or reload after a long pause)."""
        found = store.query_arrow(
            _OTHERS_SINCE, {"writer": self.writer, "since": self.read_since_us}
        )
        now = int(found.column("now")[0].as_py())
        if now - self.read_since_us > int((RELOAD_AFTER_S + MARGIN_S) * _MICROS):
            self.sets = SeenKeys.load(store, self.targets, self.writer).sets
            self.read_since_us = now - int(MARGIN_S * _MICROS)
            return
        targets = found.column("targets")[0].values
        if len(targets):
            hashes = found.column("hashes")[0].values
            for table in self.sets:
                mine = pc.equal(targets, table)
                self.sets[table].add(_hashes(hashes.filter(mine)))
        # Rows stamped before now but committed after this read are read again next time.
        self.read_since_us = now - int(MARGIN_S * _MICROS)

    def maybe_stored(self, table: str, hashes: Hashes) -> npt.NDArray[np.bool_]:
        """Which keys (by hash) the table may hold; ``False`` is certain."""
        return self.sets[table].contains(hashes)

    def add(self, table: str, hashes: Hashes) -> None:
        """Keys the table holds from now on (a write this writer applied)."""
        self.sets[table].add(hashes)

    @property
    def keys(self) -> int:
        return sum(len(s) for s in self.sets.values())

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.sets.values())
