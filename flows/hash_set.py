"""An exact set of 64-bit key hashes, in memory, answering a batch of lookups at once.

The writer asks "which of these keys may be stored already?" for every write; the answer must
never be "no" for a stored key (that would overwrite it), and should almost always be "no" for
a new one (a "maybe" costs a read of the store). Hashes are uniform, so each sorted run keeps a
directory from a hash's top bits to where its bucket starts: a lookup costs one or two reads per
key however large the set, where a binary search over millions of values would miss the cache
some twenty times per key.

Added hashes go into small runs merged with their neighbours once they grow to a quarter of the
size (a log-structured merge): adding n hashes costs O(n log n) amortised, and a lookup checks a
handful of runs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Hashes = npt.NDArray[np.uint64]
_EMPTY: Hashes = np.zeros(0, np.uint64)
# A run is merged into the one before it while that one is less than this many times larger.
_GROWTH = 4


class _Run:
    """Sorted distinct hashes and, per value of their top ``bits`` bits, where those start."""

    def __init__(self, values: Hashes) -> None:
        self.values = values
        # One or two values per bucket; the directory (uint32) costs half as much as the values.
        self.bits = max(1, len(values).bit_length() - 1)
        self._shift = np.uint64(64 - self.bits)
        counts = np.bincount(self._bucket(values), minlength=1 << self.bits)
        self._starts = np.zeros(len(counts) + 1, np.uint32 if len(values) < 2**32 else np.uint64)
        np.cumsum(counts, out=self._starts[1:])

    def _bucket(self, hashes: Hashes) -> npt.NDArray[np.intp]:
        return (hashes >> self._shift).astype(np.intp)

    def contains(self, hashes: Hashes) -> npt.NDArray[np.bool_]:
        found = np.zeros(len(hashes), bool)
        bucket = self._bucket(hashes)
        at = self._starts[bucket].astype(np.intp)
        end = self._starts[bucket + 1].astype(np.intp)
        todo = np.flatnonzero(at < end)
        # One pass per position inside a bucket: a handful, since buckets hold a few values.
        while todo.size:
            hit = self.values[at[todo]] == hashes[todo]
            found[todo[hit]] = True
            at[todo] += 1
            todo = todo[~hit & (at[todo] < end[todo])]
        return found

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self._starts.nbytes


def _distinct_sorted(values: Hashes) -> Hashes:
    # A stable sort runs as timsort, linear on the two sorted runs a merge concatenates.
    ordered = np.sort(values, kind="stable")
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class HashSet:
    """Exact membership of uint64 hashes; no false positives, no false negatives."""

    def __init__(self, hashes: Hashes = _EMPTY) -> None:
        self._runs: list[_Run] = []
        self.add(hashes)

    def add(self, hashes: Hashes) -> None:
        if not len(hashes):
            return
        values = _distinct_sorted(np.asarray(hashes, np.uint64))
        values = values[~self.contains(values)]  # each hash in one run: len() stays exact
        if not len(values):
            return
        while self._runs and len(self._runs[-1].values) < _GROWTH * len(values):
            values = _distinct_sorted(np.concatenate([self._runs.pop().values, values]))
        self._runs.append(_Run(values))

    def contains(self, hashes: Hashes) -> npt.NDArray[np.bool_]:
        """For each of ``hashes``, whether the set holds it."""
        hashes = np.asarray(hashes, np.uint64)
        found = np.zeros(len(hashes), bool)
        for run in self._runs:
            todo = np.flatnonzero(~found)
            if not todo.size:
                break
            found[todo] = run.contains(hashes[todo])
        return found

    def __len__(self) -> int:
        return sum(len(run.values) for run in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self._runs)

    @property
    def runs(self) -> int:
        return len(self._runs)
