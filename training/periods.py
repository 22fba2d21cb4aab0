"""Simulated data periods: the real LendingClub loans dealt into seeded periods.

``modeldata/lending_club`` carries no issue date, so "the data as of period k" is simulated: each
loan falls in one of ``periods`` periods by a keyed hash of its ``rownames`` (stable per loan,
whatever order the rows come in), and the data as of period ``k`` is every loan of periods
``0..k``. A retraining run on period ``k + 1`` therefore sees every loan the run before it saw
plus the new ones, as a lender's growing book would. The selection is recorded in the model card
(``data.selection``) so the rows can be rebuilt exactly, and checked against the card's hash.
"""

from __future__ import annotations

import hashlib

import numpy as np

from training.dataset import LendingClub, frame_sha256

DEFAULT_PERIODS = 2
DEFAULT_PERIOD_SEED = 2015


class PeriodError(ValueError):
    """A period selection that names no rows."""


def period_of(row_numbers: np.ndarray, periods: int, seed: int) -> np.ndarray:
    """Each loan's period, from a keyed hash of its row number."""
    key = seed.to_bytes(8, "little", signed=False)
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(str(int(r)).encode(), digest_size=8, key=key).digest(), "little"
            )
            % periods
            for r in row_numbers
        ],
        dtype=np.int64,
    )


def through_period(
    data: LendingClub,
    through: int,
    periods: int = DEFAULT_PERIODS,
    seed: int = DEFAULT_PERIOD_SEED,
) -> LendingClub:
    """The loans of periods ``0..through``; all of them when ``through`` is the last period."""
    if not 1 <= periods <= 100 or not 0 <= through < periods:
        raise PeriodError(f"period {through} of {periods} does not exist (0 .. {periods - 1})")
    if data.selection is not None:
        raise PeriodError("periods are chosen from the full data, not from a selection")
    if through == periods - 1:
        return data
    keep = period_of(data.frame["rownames"].to_numpy(), periods, seed) <= through
    frame = data.frame.loc[keep].reset_index(drop=True)
    selection = {"periods": periods, "through": through, "seed": seed}
    return LendingClub(frame=frame, sha256=frame_sha256(frame), selection=selection)


def reselect(data: LendingClub, selection: dict[str, int] | None) -> LendingClub:
    """The rows a card's ``data.selection`` names, rebuilt from the full data."""
    if selection is None:
        return data
    return through_period(data, selection["through"], selection["periods"], selection["seed"])
