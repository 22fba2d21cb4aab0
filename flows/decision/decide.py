"""Turn a PD and the features it was scored from into approve / refer / decline, naming every
rule that fired. Pure: no model, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flows.decision.policy import OUTCOMES, Outcome, Policy
from flows.features import FEATURE_NAMES

_RANK = {outcome: i for i, outcome in enumerate(OUTCOMES)}
# The PD cut-offs are named like rules, so that the answer says why in one list.
PD_REFER = "pd_refer"
PD_DECLINE = "pd_decline"
_VECTOR_FROM = 8


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    # Every rule that fired, PD cut-offs included, in policy order.
    rules_fired: tuple[str, ...]


def _pd_outcome(pd: float, policy: Policy) -> tuple[Outcome, tuple[str, ...]]:
    if pd >= policy.decline_from:
        return "decline", (PD_DECLINE,)
    if pd >= policy.approve_below:
        return "refer", (PD_REFER,)
    return "approve", ()


def decide(pd: float, features: dict[str, float], policy: Policy) -> Decision:
    """The decision for one application; ``features`` maps feature names to values."""
    if not math.isfinite(pd):
        raise ValueError(f"PD must be a finite number, got {pd}")
    outcome, fired = _pd_outcome(pd, policy)
    names = list(fired)
    for rule in policy.rules:
        value = features[rule.feature]
        if value > rule.above:  # NaN compares False: a missing value fires nothing
            names.append(rule.name)
            if _RANK[rule.outcome] > _RANK[outcome]:
                outcome = rule.outcome
    return Decision(outcome, tuple(names))


def decide_many(pd: np.ndarray, matrix: np.ndarray, policy: Policy) -> list[Decision]:
    """Decisions for a scored batch: row i of ``matrix`` (features in FEATURE_NAMES order)
    was scored ``pd[i]``. The same rules as :func:`decide`, a column at a time."""
    pd = np.asarray(pd, dtype=np.float64)
    if len(pd) < _VECTOR_FROM:
        # numpy's fixed cost per rule outweighs a loop over a few rows (one request)
        columns = {rule.feature: FEATURE_NAMES.index(rule.feature) for rule in policy.rules}
        rows = matrix.tolist()
        return [
            decide(value, {name: rows[i][j] for name, j in columns.items()}, policy)
            for i, value in enumerate(pd.tolist())
        ]
    if not np.isfinite(pd).all():
        raise ValueError("PD must be a finite number")
    rank = np.where(pd >= policy.decline_from, 2, np.where(pd >= policy.approve_below, 1, 0))
    fired: list[tuple[str, np.ndarray]] = [
        (PD_DECLINE, rank == 2),
        (PD_REFER, rank == 1),
    ]
    for rule in policy.rules:
        with np.errstate(invalid="ignore"):  # NaN compares False: a missing value fires nothing
            hit = matrix[:, FEATURE_NAMES.index(rule.feature)] > rule.above
        fired.append((rule.name, hit))
        rank = np.where(hit, np.maximum(rank, _RANK[rule.outcome]), rank)
    # The usual row fires nothing: find the rows that fired anything once, then name for those.
    any_fired = np.zeros(len(pd), dtype=bool)
    for _, hit in fired:
        any_fired |= hit
    names: list[tuple[str, ...]] = [()] * len(pd)
    for i in np.flatnonzero(any_fired).tolist():
        names[i] = tuple(name for name, hit in fired if hit[i])
    return [
        Decision(OUTCOMES[r], n) for r, n in zip(rank.tolist(), names, strict=True)
    ]
