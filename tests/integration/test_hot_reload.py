"""Hot reload: a model promoted while the flow runs scores from the next micro-batch on, with
no event lost or scored twice, and every row names the version that scored it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from flows.jobs import RunOptions, run_files
from flows.model import ChampionWatch, load_model
from flows.model_registry import CHAMPION
from flows.settings import Bands, Settings
from flows.writer import RunStats
from tests.conftest import query_rows
from training.export import export_model
from training.registry import Change, record
from training.train import TrainingResult

N, BATCH = 3000, 100


def _two_versions(result: TrainingResult, models_dir: Path) -> tuple[str, str]:
    first = export_model(result, models_dir, Bands())
    second = export_model(result, models_dir, Bands(), make_current=False)
    return first.version, second.version


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_follows_the_pointer_between_batches(
    training_result: TrainingResult, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    old, new = _two_versions(training_result, models_dir)
    clock = FakeClock()
    watch = ChampionWatch(
        models_dir, load_model(models_dir), kind="applicant", interval_s=5, clock=clock
    )
    assert watch.current().version == old
    record(models_dir, "applicant", [Change(new, CHAMPION, "promote", "test")])
    clock.now += 4.9
    assert watch.current().version == old  # not looked at before the interval is up
    clock.now += 0.2
    assert watch.current().version == new and watch.refused is None

    # A pointer to a version that fails verification: the model in use goes on scoring.
    broken = models_dir / f"{old}-copy"
    shutil.copytree(models_dir / old, broken)
    (broken / "model.onnx").write_bytes(b"not onnx")
    (models_dir / "CURRENT").write_text(f"{broken.name}\n")
    clock.now += 10
    assert watch.current().version == new
    assert watch.refused is not None and "does not match its card" in watch.refused
    (models_dir / "CURRENT").write_text(f"{old}\n")
    clock.now += 10
    assert watch.current().version == old and watch.refused is None


def test_a_promotion_mid_run_switches_between_batches_with_exact_accounting(
    training_result: TrainingResult,
    events_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    models_dir = home / "models"
    old, new = _two_versions(training_result, models_dir)
    settings = Settings(home=home, store_url=f"chdb://{tmp_path / 'store'}", batch_size=BATCH)
    path = events_file(N)
    writes: list[int] = []

    def promote_after_first_write(stats: RunStats) -> None:
        writes.append(stats.sent)
        if len(writes) == 1:
            record(models_dir, "applicant", [Change(new, CHAMPION, "promote", "mid-run")])

    model = load_model(models_dir)
    watch = ChampionWatch(models_dir, model, kind="applicant", interval_s=0)
    options = RunOptions(on_write=promote_after_first_write, watch=watch)
    stats = run_files([path], settings, model, options)
    assert (stats.sent, stats.scored, stats.dead_lettered, stats.duplicates) == (N, N, 0, 0)

    rows = query_rows(
        settings.store,
        "SELECT origin, model_version FROM scored_events FINAL "
        "JOIN raw_events FINAL USING event_id",
    )
    assert len(rows) == N == len({r["origin"] for r in rows})
    line = {int(r["origin"].rsplit(":", 1)[1]): r["model_version"] for r in rows}
    assert sorted(line) == list(range(1, N + 1))
    switch = min(n for n, version in line.items() if version == new)
    assert all(version == (old if n < switch else new) for n, version in line.items())
    # the switch falls between two micro-batches, after the first was written
    assert (switch - 1) % BATCH == 0 and BATCH < switch < N
