"""The model registry's stages, read side: which version of each kind is in use, and why.

Each directory of versions (``<models_dir>`` for the origination kinds, ``<models_dir>/behaviour``
for the behavioural model) keeps ``registry.jsonl``: one JSON line per stage change (who, when,
why, and the gate's figures when one was run), appended by :mod:`training.registry` and never
rewritten. A version's stage is the stage of its last change. The ``CURRENT`` pointers follow the
champions; the log is what explains them.

Versions exported before the log existed have no change in it: the one a pointer names is the
champion, the others are candidates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.errors import UsageError
from flows.model_cards import BEHAVIOUR_DIR, ModelError, current_version, read_card

REGISTRY_FILE = "registry.jsonl"
CANDIDATE, CHALLENGER, CHAMPION, RETIRED = STAGES = (
    "candidate",
    "challenger",
    "champion",
    "retired",
)
ORIGINATION_KINDS = ("applicant", "priced")
BEHAVIOUR_KIND = "behaviour"
KINDS = (*ORIGINATION_KINDS, BEHAVIOUR_KIND)


class UnknownVersion(UsageError, ModelError):
    """A version the registry does not hold (the user's input: exit 2)."""


@dataclass(frozen=True)
class StageChange:
    """One line of the log."""

    seq: int
    at: str
    by: str
    kind: str
    version: str
    stage: str
    previous: str | None
    action: str
    reason: str
    gate: dict[str, Any] | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "by": self.by,
            "kind": self.kind,
            "version": self.version,
            "stage": self.stage,
            "previous": self.previous,
            "action": self.action,
            "reason": self.reason,
            "gate": self.gate,
        }


@dataclass(frozen=True)
class ModelEntry:
    """A version as ``riskctl models list`` shows it."""

    version: str
    kind: str
    stage: str
    path: Path
    created_at: str
    model_type: str
    test_auc: float | None
    test_brier: float | None
    data_sha256: str | None
    card: dict[str, Any]


def kind_dir(models_dir: Path, kind: str) -> Path:
    """Where a kind's versions, pointer and log live."""
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    return models_dir / BEHAVIOUR_DIR if kind == BEHAVIOUR_KIND else models_dir


def pointer_kind(kind: str) -> str | None:
    """The ``kind`` argument of :func:`flows.model_cards.current_version` for a registry kind: the
    behavioural directory has a plain ``CURRENT`` of its own."""
    return None if kind == BEHAVIOUR_KIND else kind


def _change(record: Any, path: Path, line: int) -> StageChange:
    fields = ("seq", "at", "by", "kind", "version", "stage", "action", "reason")
    complete = isinstance(record, dict) and all(
        isinstance(record.get(f), str | int) for f in fields
    )
    if not complete:
        raise ModelError(f"{path} line {line} is not a stage change; restore it from a backup")
    if record["stage"] not in STAGES or record["kind"] not in KINDS:
        raise ModelError(f"{path} line {line} names an unknown stage or kind")
    previous = record.get("previous")
    gate = record.get("gate")
    return StageChange(
        seq=int(record["seq"]),
        at=str(record["at"]),
        by=str(record["by"]),
        kind=str(record["kind"]),
        version=str(record["version"]),
        stage=str(record["stage"]),
        previous=str(previous) if isinstance(previous, str) else None,
        action=str(record["action"]),
        reason=str(record["reason"]),
        gate=gate if isinstance(gate, dict) else None,
    )


def read_changes(directory: Path) -> list[StageChange]:
    """Every stage change recorded in ``directory``, oldest first."""
    path = directory / REGISTRY_FILE
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    changes = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise ModelError(f"{path} line {number} is not JSON; restore it from a backup") from exc
        changes.append(_change(record, path, number))
    return changes


def stages(changes: list[StageChange]) -> dict[str, str]:
    """Each logged version's stage: the stage of its last change."""
    return {change.version: change.stage for change in changes}


def champion(changes: list[StageChange], kind: str) -> str | None:
    """The kind's champion by the log (``None`` when the log holds none)."""
    found = None
    for change in changes:
        if change.kind != kind:
            continue
        if change.stage == CHAMPION:
            found = change.version
        elif change.version == found:
            found = None
    return found


def _versions(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / "card.json").is_file())


def _card_kind(card: dict[str, Any], directory_kind: str) -> str:
    kind = card.get("kind")
    if directory_kind == BEHAVIOUR_KIND:
        return BEHAVIOUR_KIND
    return kind if kind in ORIGINATION_KINDS else "applicant"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def entries(models_dir: Path) -> list[ModelEntry]:
    """Every version of every kind with its stage: origination kinds first, then behavioural,
    each oldest first."""
    found: list[ModelEntry] = []
    for directory, directory_kind in (
        (models_dir, "applicant"),
        (models_dir / BEHAVIOUR_DIR, BEHAVIOUR_KIND),
    ):
        logged = stages(read_changes(directory))
        kinds = ORIGINATION_KINDS if directory_kind != BEHAVIOUR_KIND else (BEHAVIOUR_KIND,)
        pointed = {current_version(directory, pointer_kind(k)) for k in kinds} - {None}
        for path in _versions(directory):
            card = read_card(path)
            version = card.get("version")
            if not isinstance(version, str):
                raise ModelError(f"model card {path / 'card.json'} has no version")
            metrics = card.get("metrics")
            test = metrics.get("test") if isinstance(metrics, dict) else None
            test = test if isinstance(test, dict) else {}
            data = card.get("data")
            sha = data.get("sha256") if isinstance(data, dict) else None
            stage = logged.get(version) or (CHAMPION if version in pointed else CANDIDATE)
            found.append(
                ModelEntry(
                    version=version,
                    kind=_card_kind(card, directory_kind),
                    stage=stage,
                    path=path,
                    created_at=str(card.get("created_at", "")),
                    model_type=str(card.get("model_type", "")),
                    test_auc=_number(test.get("auc")),
                    test_brier=_number(test.get("brier")),
                    data_sha256=sha if isinstance(sha, str) else None,
                    card=card,
                )
            )
    return found


def find_entry(models_dir: Path, version: str) -> ModelEntry:
    """The version of whatever kind, or one :class:`ModelError`."""
    for entry in entries(models_dir):
        if entry.version == version:
            return entry
    raise UnknownVersion(f"model version {version!r} not found in {models_dir}")


def history(models_dir: Path, version: str) -> list[StageChange]:
    """The stage changes of one version, oldest first."""
    changes = read_changes(models_dir) + read_changes(models_dir / BEHAVIOUR_DIR)
    return [c for c in changes if c.version == version]


def latest_challenger(changes: list[StageChange], kind: str) -> str | None:
    """The kind's version made a challenger most recently among those still challengers (the
    model shadow scoring runs), or ``None``."""
    now = stages(changes)
    found = None
    for change in changes:
        if change.kind == kind and change.stage == CHALLENGER and now[change.version] == CHALLENGER:
            found = change.version
    return found
