"""The writer's in-memory key set is exact: membership equals a Python set's, whatever the
values (ties in their top bits, the extremes) and however they were added."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.hash_set import HashSet

U64 = st.integers(0, 2**64 - 1)
# Values sharing their top bits land in one bucket: the crowded case of the directory.
CROWDED = st.builds(lambda low: (0xABCD << 48) | low, st.integers(0, 2**16 - 1))
VALUES = st.one_of(U64, CROWDED, st.sampled_from([0, 1, 2**63, 2**64 - 1]))


def arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


@settings(max_examples=200, deadline=None)
@given(
    adds=st.lists(st.lists(VALUES, max_size=60), max_size=12),
    lookups=st.lists(VALUES, max_size=80),
)
def test_membership_equals_a_python_set(adds: list[list[int]], lookups: list[int]) -> None:
    found = HashSet()
    expected: set[int] = set()
    for values in adds:
        found.add(arr(values))
        expected.update(values)
        assert len(found) == len(expected)
    everything = lookups + sorted(expected)
    assert found.contains(arr(everything)).tolist() == [v in expected for v in everything]


def test_runs_stay_few_as_batches_accumulate() -> None:
    rng = np.random.default_rng(5)
    found = HashSet(rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True))
    added = [rng.integers(0, 2**64 - 1, 2_000, dtype=np.uint64, endpoint=True) for _ in range(200)]
    for batch in added:
        found.add(batch)
        assert found.runs <= 8
    assert found.contains(np.concatenate(added)).all()
    assert len(found) == 200_000 + 200 * 2_000  # 64-bit draws: no two alike here
    # about 12 bytes a key: the values and a uint32 directory at most half their size
    assert found.nbytes <= 16 * len(found)
