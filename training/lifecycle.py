"""Promotion through the gate: what ``riskctl models promote``, ``train``, ``export`` and
``retrain`` share.

A version becomes its kind's champion when the kind has none yet, when it passes the gate
(:mod:`training.gate`) against the champion, or when forced with a reason, which the log keeps
beside the gate's figures (or why the gate could not run). A refused version stays (or becomes)
a challenger, and the refusal is logged too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flows.errors import RiskctlError, UsageError
from flows.model_registry import (
    CHALLENGER,
    CHAMPION,
    ModelEntry,
    entries,
    find_entry,
)
from training.dataset import LendingClub
from training.gate import DEFAULT_MARGINS, GateError, Margins, Verdict, evaluate
from training.registry import Change, record


class PromotionRefused(RiskctlError):
    """The gate found the challenger worse than the champion."""

    def __init__(self, version: str, verdict: Verdict) -> None:
        super().__init__(
            f"{version} was not promoted: {'; '.join(verdict.failures)} (on {verdict.rows} rows, "
            f"{verdict.bads} defaults); it stays a challenger. To promote it anyway: "
            f"riskctl models promote {version} --force --reason TEXT"
        )
        self.verdict = verdict


@dataclass(frozen=True)
class Promotion:
    version: str
    kind: str
    replaced: str | None
    verdict: Verdict | None
    forced: bool


def champion_entry(models_dir: Path, kind: str) -> ModelEntry | None:
    return next((e for e in entries(models_dir) if e.kind == kind and e.stage == CHAMPION), None)


def promote(
    models_dir: Path,
    version: str,
    *,
    margins: Margins = DEFAULT_MARGINS,
    force: bool = False,
    reason: str | None = None,
    data: LendingClub | None = None,
    now: datetime | None = None,
) -> Promotion:
    """Make ``version`` its kind's champion if the gate (or ``force``) allows; otherwise log it
    as a challenger with the gate's verdict and raise :class:`PromotionRefused`."""
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason: say why a model the gate refuses goes live")
    entry = find_entry(models_dir, version)
    if entry.stage == CHAMPION:
        raise UsageError(f"{version} is already the {entry.kind} champion")
    holder = champion_entry(models_dir, entry.kind)
    if holder is None:
        record(
            models_dir,
            entry.kind,
            [Change(version, CHAMPION, "promote", reason or f"first {entry.kind} champion")],
            now=now,
        )
        return Promotion(version, entry.kind, None, None, forced=False)
    verdict: Verdict | None = None
    try:
        verdict = evaluate(entry, holder, margins, data)
    except GateError as exc:
        if not force:
            raise
        gate = {"passed": False, "error": str(exc)}
    else:
        gate = verdict.as_record()
    if verdict is not None and verdict.passed:
        record(
            models_dir,
            entry.kind,
            [Change(version, CHAMPION, "promote", reason or "passed the gate", gate)],
            now=now,
        )
        return Promotion(version, entry.kind, holder.version, verdict, forced=False)
    if force:
        assert reason is not None  # checked above
        record(models_dir, entry.kind, [Change(version, CHAMPION, "force", reason, gate)], now=now)
        return Promotion(version, entry.kind, holder.version, verdict, forced=True)
    assert verdict is not None  # a gate that could not run has raised above
    record(
        models_dir,
        entry.kind,
        [Change(version, CHALLENGER, "gate refused", "; ".join(verdict.failures), gate)],
        now=now,
    )
    raise PromotionRefused(version, verdict)


def register_challenger(
    models_dir: Path,
    version: str,
    *,
    margins: Margins = DEFAULT_MARGINS,
    data: LendingClub | None = None,
    now: datetime | None = None,
) -> Verdict | None:
    """Log a new version as a challenger with the gate's verdict against the champion, without
    promoting it (``None``: its kind has no champion to compare with yet)."""
    entry = find_entry(models_dir, version)
    holder = champion_entry(models_dir, entry.kind)
    verdict = None if holder is None else evaluate(entry, holder, margins, data)
    if verdict is None:
        reason = f"no {entry.kind} champion to compare with"
    else:
        reason = "; ".join(verdict.failures) or "passes the gate; promote it to use it"
    gate = None if verdict is None else verdict.as_record()
    record(models_dir, entry.kind, [Change(version, CHALLENGER, "retrain", reason, gate)], now=now)
    return verdict
