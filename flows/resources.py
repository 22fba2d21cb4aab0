"""Data shipped inside the distribution, found through ``importlib.resources``.

``clickhouse/`` and ``grafana/`` stay at the top of the repository and install as the packages
``flows.sql`` and ``flows.grafana`` (pyproject.toml maps them), so a wheel install and an editable
one read the same files.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_dir(package: str) -> Path:
    """The directory holding data package ``package``'s files."""
    found = files(package)
    # Wheels install unpacked and editable installs point at the source tree, so the data is
    # always plain files; callers glob, copy and hand these paths to users.
    if not isinstance(found, Path) or not found.is_dir():
        raise RuntimeError(f"package data {package} is not a directory on disk: {found}")
    return found
