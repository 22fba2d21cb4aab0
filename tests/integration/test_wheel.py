"""Installing riskctl: the lock pins what pyproject.toml asks for, every install path installs
from it, and a wheel built from the tree works on its own in a fresh venv, from another
directory (migrations, dashboards and users.sql travel inside it as package data).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "requirements.lock"
# The uv the lock pins, installed beside this interpreter by tests/run.
UV = Path(sys.executable).with_name("uv")


def _locked() -> dict[str, list[str]]:
    """Package name -> every version the lock pins for it (one per Python-version marker)."""
    pins: dict[str, list[str]] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins.setdefault(canonicalize_name(requirement.name), []).append(spec.version)
    return pins


def test_every_import_package_is_declared() -> None:
    declared = set(PROJECT["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("flows", "training", "cli")
        for init in (ROOT / top).rglob("__init__.py")
    }
    mapped = PROJECT["tool"]["setuptools"]["package-dir"]
    assert mapped == {"flows.sql": "clickhouse", "flows.grafana": "grafana"}
    assert declared == on_disk | set(mapped)


def test_the_lock_pins_every_requirement_within_its_lower_bounds() -> None:
    pins = _locked()
    extras = PROJECT["project"]["optional-dependencies"]
    wanted = [*PROJECT["project"]["dependencies"], *extras["test"]]
    assert len(wanted) > 20
    for text in wanted:
        requirement = Requirement(text)
        versions = pins.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in requirements.lock: run bash tests/lock"
        for version in versions:
            assert requirement.specifier.contains(version), f"{requirement.name}=={version}"


def test_every_install_path_uses_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[test]" -c requirements.lock' in readme
    assert "```sh\nbash tests/run\n```" in readme
    run = (ROOT / "tests/run").read_text()
    assert "lock=requirements.lock" in run and '-e ".[test]" -c "$lock"' in run
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY pyproject.toml README.md requirements.lock ", dockerfile, re.M)
    assert "pip install -r /tmp/dependencies.txt -c requirements.lock" in dockerfile
    assert "pip install -e . --no-deps -c requirements.lock" in dockerfile
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    assert ci[-1] == "exec bash tests/run"


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_a_wheel_installs_and_runs_from_another_directory(tmp_path: Path) -> None:
    # Nothing of this checkout, this venv or the caller's settings may leak into the install.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RISKCTL_", "PYTHON", "VIRTUAL_ENV", "UV_"))
    }
    # uv builds the sdist first and the wheel from it, so only what the sdist carries counts.
    dist = tmp_path / "dist"
    _run([UV, "build", "--quiet", "--out-dir", dist, ROOT], tmp_path, env)
    (wheel,) = dist.glob("riskctl-*.whl")
    venv = tmp_path / "venv"
    _run([UV, "venv", "--quiet", "--python", sys.executable, venv], tmp_path, env)
    python = venv / "bin" / "python"
    _run([UV, "pip", "install", "--quiet", "--python", python, "-c", LOCK, wheel], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    imports = "import cli, flows; print(flows.__file__, cli.__file__)"
    where = _run([python, "-c", imports], work, env)
    assert all(Path(p).is_relative_to(venv) for p in where.split()), where
    riskctl = venv / "bin" / "riskctl"
    migrated = _run([riskctl, "db", "migrate"], work, env)
    assert "0001_core_tables" in migrated, migrated
    _run([riskctl, "demo", "--events", "500"], work, env)
    report = _run([riskctl, "report", "--out", "report.html"], work, env)
    assert "panels" in report, report
    page = (work / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "portfolio risk" in page.lower()
    assert (work / ".riskctl" / "store").is_dir()
