"""The model registry's write side; :mod:`flows.model` is the read side.

Readers (the dataflow, ``riskctl models list``) may look at ``models_dir`` at any moment, so a
version appears all at once: its files are written into a hidden sibling of ``models_dir`` and
the finished directory is renamed into place; ``CURRENT`` is replaced with a rename too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from flows.errors import RiskctlError
from flows.model import current_file


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
    # A sibling of models_dir, not a child: list_models must never see a half-written card.
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
