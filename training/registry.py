"""The model registry's write side; :mod:`flows.model` is the read side.

Readers (the dataflow, ``riskctl models list``) may look at ``models_dir`` at any moment, so a
version appears all at once: its files are written into a hidden sibling of ``models_dir`` and
the finished directory is renamed into place; ``CURRENT`` is replaced with a rename too.

Stage changes (:func:`record`, :func:`rollback`) are appended to the directory's
``registry.jsonl`` (:mod:`flows.model_registry` reads it) under a lock, the whole file renamed
into place, and ``CURRENT`` then follows the champion.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.errors import RiskctlError
from flows.model_cards import current_file, current_version
from flows.model_registry import (
    CHAMPION,
    REGISTRY_FILE,
    RETIRED,
    STAGES,
    StageChange,
    champion,
    kind_dir,
    pointer_kind,
    read_changes,
    stages,
)

LOCK_FILE = "registry.lock"


class RegistryError(RiskctlError):
    """A model version cannot be written or made current."""


def version_name(created_at: datetime, short_type: str) -> str:
    """Sortable by time, e.g. ``20261122T041500Z-lr``."""
    return f"{created_at:%Y%m%dT%H%M%SZ}-{short_type}"


def unique_version(models_dir: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3`` ... when exports land within the same second."""
    version, n = base, 1
    while (models_dir / version).exists():
        n += 1
        version = f"{base}-{n}"
    return version


def _atomic_write(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; readers may run as other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish_version(models_dir: Path, version: str, files: Mapping[str, bytes]) -> Path:
    """Write a complete version directory; it is visible only once every file is in it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / version
    if target.exists():
        raise RegistryError(f"model version {version} already exists in {models_dir}")
    # A sibling of models_dir, not a child: a listing must never see a half-written card.
    staging = Path(tempfile.mkdtemp(dir=models_dir.parent, prefix=f".{models_dir.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; scoring workers may run as others
        for name, content in files.items():
            (staging / name).write_bytes(content)
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def set_current(models_dir: Path, version: str, kind: str | None = None) -> None:
    """Point ``kind``'s current-version file (or the plain ``CURRENT``) at ``version``."""
    if not (models_dir / version).is_dir():
        raise RegistryError(f"model version {version} not found in {models_dir}")
    _atomic_write(models_dir / current_file(kind), f"{version}\n".encode())


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One writer of a directory's log at a time (a read-modify-rename needs it)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_lines(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Append JSON lines to ``path`` atomically: readers see the old file or the old file plus
    every new line, never part of one. The caller holds the directory's lock."""
    old = path.read_bytes() if path.is_file() else b""
    new = b"".join(json.dumps(r, allow_nan=False).encode() + b"\n" for r in records)
    _atomic_write(path, old + new)


def user() -> str:
    """Who made a change: the login name, else the numeric user id."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        return f"uid {os.getuid()}"


def _champion_now(directory: Path, changes: list[StageChange], kind: str) -> str | None:
    logged = champion(changes, kind)
    if logged is not None:
        return logged
    # A pointer written before the log existed names the champion while its version has no
    # line in the log (as flows.model_registry.entries reads it).
    pointed = current_version(directory, pointer_kind(kind))
    return pointed if pointed is not None and pointed not in stages(changes) else None


@dataclass(frozen=True)
class Change:
    """A stage change to record: ``version`` of ``kind`` moves to ``stage``."""

    version: str
    stage: str
    action: str
    reason: str
    gate: dict[str, Any] | None = None


def record(
    models_dir: Path, kind: str, changes: Sequence[Change], *, now: datetime | None = None
) -> list[StageChange]:
    """Log stage changes of one kind in one atomic append, then point ``CURRENT`` at the
    champion. A new champion retires the one before it in the same append. ``models_dir`` is
    the registry's root (the behavioural kind lives one level down)."""
    directory = kind_dir(models_dir, kind)
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    who = user()
    with locked(directory):
        logged = read_changes(directory)
        current = stages(logged)
        holder = _champion_now(directory, logged, kind)
        if holder is not None:
            current.setdefault(holder, CHAMPION)
        written: list[StageChange] = []
        for change in changes:
            if change.stage not in STAGES:
                raise RegistryError(f"unknown stage {change.stage!r}")
            if not (directory / change.version / "card.json").is_file():
                raise RegistryError(f"model version {change.version} not found in {directory}")
            steps: list[tuple[str, str, str, dict[str, Any] | None]] = []
            if change.stage == CHAMPION and holder not in (None, change.version):
                steps.append((holder, RETIRED, f"replaced by {change.version}", None))
            steps.append((change.version, change.stage, change.reason, change.gate))
            for version, stage, reason, gate in steps:
                written.append(
                    StageChange(
                        seq=len(logged) + len(written) + 1,
                        at=at,
                        by=who,
                        kind=kind,
                        version=version,
                        stage=stage,
                        previous=current.get(version),
                        action=change.action,
                        reason=reason,
                        gate=gate,
                    )
                )
                current[version] = stage
            if change.stage == CHAMPION:
                holder = change.version
            elif change.version == holder:
                holder = None
        if holder is None and _champion_now(directory, logged, kind) is not None:
            # CURRENT would keep naming a retired model: only a replacement retires a champion.
            raise RegistryError(
                f"the {kind} champion cannot be retired without a successor; promote another "
                "version or roll back"
            )
        append_lines(directory / REGISTRY_FILE, [c.as_record() for c in written])
        # The pointer follows the log; a crash between the two is mended by the next change.
        if holder is not None:
            set_current(directory, holder, pointer_kind(kind))
    return written


def rollback(
    models_dir: Path, kind: str, reason: str, *, now: datetime | None = None
) -> tuple[str, str]:
    """Retire the kind's champion and bring back the latest champion before it that no rollback
    retired; returns ``(retired, restored)``."""
    directory = kind_dir(models_dir, kind)
    logged = read_changes(directory)
    holder = _champion_now(directory, logged, kind)
    if holder is None:
        raise RegistryError(f"no {kind} champion to roll back")
    # A version a rollback retired is never brought back by another (no ping-pong).
    rolled_back = {c.version for c in logged if c.action == "rollback" and c.stage == RETIRED}
    earlier = [
        c.version
        for c in logged
        if c.kind == kind
        and c.stage == CHAMPION
        and c.version != holder
        and c.version not in rolled_back
        and (directory / c.version / "card.json").is_file()
    ]
    if not earlier:
        raise RegistryError(f"{kind} model {holder} has no earlier champion to roll back to")
    restored = earlier[-1]
    record(
        models_dir,
        kind,
        [
            Change(holder, RETIRED, "rollback", reason),
            Change(restored, CHAMPION, "rollback", reason),
        ],
        now=now,
    )
    return holder, restored
