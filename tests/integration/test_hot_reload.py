"""Hot reload: a model promoted while the flow runs scores from the next micro-batch on, with
no event lost or scored twice, and every row names the version that scored it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.jobs import RunOptions, run_files, run_kafka
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES
from flows.model import ChampionWatch, ScoringModel, load_live_model, load_model
from flows.model_cards import BEHAVIOUR_DIR
from flows.model_registry import CHALLENGER, CHAMPION, RETIRED
from flows.settings import Bands, Settings
from flows.shadow import ChallengerWatch
from flows.writer import RunStats
from tests.conftest import query_rows
from tests.kafka_fixtures import produce_file
from training.behaviour import BehaviourResult
from training.behaviour_export import export_behaviour
from training.dataset import LendingClub
from training.export import export_model
from training.registry import Change, record
from training.repayments import mixed_events
from training.replay import ReplayPlan
from training.train import TrainingResult

N, BATCH = 3000, 100


def _two_versions(result: TrainingResult, models_dir: Path) -> tuple[str, str]:
    first = export_model(result, models_dir, Bands())
    second = export_model(result, models_dir, Bands(), make_current=False)
    return first.version, second.version


def _unpointed(result: TrainingResult, models_dir: Path, n: int) -> list[str]:
    """``n`` versions published beside the current one, none of them pointed at."""
    return [export_model(result, models_dir, Bands(), make_current=False).version for _ in range(n)]


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


class RecordingWatch(ChampionWatch):
    """The watch the flow uses, noting the version it hands out for each micro-batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[str] = []

    def current(self) -> ScoringModel:
        model = super().current()
        self.handed.append(model.version)
        return model


KAFKA_N, KAFKA_READ = 6000, 500


def test_a_promotion_mid_stream_on_kafka_switches_at_one_batch_boundary(
    training_result: TrainingResult,
    kafka_settings: Settings,
    events_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    models_dir = home / "models"
    old, new = _two_versions(training_result, models_dir)
    kafka = replace(kafka_settings.kafka, consume_batch_size=KAFKA_READ)
    settings = replace(kafka_settings, home=home, kafka=kafka)
    sent = produce_file(kafka, events_file(KAFKA_N, corrupt=0.02))
    writes: list[int] = []

    def promote_after_first_write(stats: RunStats) -> None:
        writes.append(stats.sent)
        if len(writes) == 1:
            record(models_dir, "applicant", [Change(new, CHAMPION, "promote", "mid-stream")])

    watch = RecordingWatch(models_dir, load_model(models_dir), kind="applicant", interval_s=0)
    options = RunOptions(on_write=promote_after_first_write, watch=watch)
    stats = run_kafka(settings, load_model(models_dir), options, until_end=True)

    # sent = scored + dead-lettered, nothing skipped, nothing lost
    assert stats.sent == sent and stats.duplicates == 0
    assert (stats.scored, stats.dead_lettered) == (KAFKA_N, sent - KAFKA_N)
    # the versions handed out, one per micro-batch: the old ones, then only the new one
    switch = watch.handed.index(new)
    assert switch >= 1 and set(watch.handed[:switch]) == {old}
    assert set(watch.handed[switch:]) == {new} and len(watch.handed) - switch >= 1

    scored = query_rows(
        settings.store,
        "SELECT origin, model_version, received_at FROM scored_events FINAL "
        "JOIN raw_events FINAL USING event_id",
    )
    dead = query_rows(settings.store, "SELECT origin FROM dead_letters FINAL")
    assert len(scored) == KAFKA_N and len(dead) == sent - KAFKA_N
    # every offset of every partition is accounted for exactly once, scored or dead-lettered
    offsets: dict[int, list[int]] = {}
    for row in scored + dead:
        _, _topic, partition, offset = row["origin"].rsplit(":", 3)
        offsets.setdefault(int(partition), []).append(int(offset))
    assert sorted(offsets) == list(range(kafka.partitions))
    assert all(sorted(seen) == list(range(len(seen))) for seen in offsets.values())
    assert sum(len(seen) for seen in offsets.values()) == sent

    by_partition: dict[int, list[tuple[int, str]]] = {}
    batches: dict[tuple[int, object], set[str]] = {}
    for row in scored:
        _, _topic, partition, offset = row["origin"].rsplit(":", 3)
        by_partition.setdefault(int(partition), []).append((int(offset), row["model_version"]))
        batches.setdefault((int(partition), row["received_at"]), set()).add(row["model_version"])
    # within each partition the old model scored a prefix and the new one the rest
    for rows in by_partition.values():
        versions = [version for _, version in sorted(rows)]
        cut = versions.index(new) if new in versions else len(versions)
        assert set(versions[:cut]) <= {old} and set(versions[cut:]) <= {new}
    # each micro-batch (one partition read, one receipt time) was scored by one model only
    assert all(len(versions) == 1 for versions in batches.values())
    assert {row["model_version"] for row in scored} == {old, new}


MIXED_LOANS, MIXED_BATCH = 200, 400


def test_a_behavioural_promotion_mid_run_switches_live_pds_between_batches(
    training_result: TrainingResult,
    behaviour_result: BehaviourResult,
    lending_club: LendingClub,
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    models_dir = home / "models"
    export_model(training_result, models_dir, Bands())
    old = export_behaviour(behaviour_result, models_dir).version
    new = export_behaviour(behaviour_result, models_dir, make_current=False).version
    plan = ReplayPlan(max_events=MIXED_LOANS, seed=5, start=datetime(2024, 3, 4, 9, tzinfo=UTC))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in mixed_events(lending_club, plan, months=12)))
    lines = path.read_bytes().count(b"\n")
    settings = Settings(home=home, store_url=f"chdb://{tmp_path / 'store'}", batch_size=MIXED_BATCH)
    writes: list[int] = []

    def promote_after_first_write(stats: RunStats) -> None:
        writes.append(stats.sent)
        if len(writes) == 1:
            record(models_dir, "behaviour", [Change(new, CHAMPION, "promote", "mid-run")])

    live = load_live_model(models_dir)
    assert live is not None and live.version == old
    watch = RecordingWatch(
        models_dir / BEHAVIOUR_DIR, live, feature_names=BEHAVIOUR_FEATURE_NAMES, interval_s=0
    )
    options = RunOptions(on_write=promote_after_first_write, live_model=live, live_watch=watch)
    stats = run_files([path], settings, load_model(models_dir), options)
    assert stats.sent == lines and stats.dead_lettered == 0 and stats.duplicates == 0
    assert stats.pending_repayments == 0

    switch = watch.handed.index(new)
    assert switch >= 1 and set(watch.handed[:switch]) == {old}
    assert set(watch.handed[switch:]) == {new}
    rows = query_rows(
        settings.store,
        "SELECT origin, model_version FROM repayment_scores FINAL "
        "JOIN raw_events FINAL USING event_id",
    )
    [counts] = query_rows(
        settings.store,
        "SELECT (SELECT count() FROM scored_events) AS apps,"
        " (SELECT count() FROM repayment_scores) AS repayments,"
        " (SELECT uniqExact(event_id) FROM repayment_scores) AS ids",
    )
    # every event scored once: applications at origination, repayments with a live PD
    assert counts["apps"] + counts["repayments"] == lines == stats.scored
    assert counts["ids"] == counts["repayments"] == len(rows)
    line = {int(r["origin"].rsplit(":", 1)[1]): r["model_version"] for r in rows}
    first_new = min(n for n, version in line.items() if version == new)
    assert all(version == (old if n < first_new else new) for n, version in line.items())
    # the switch falls between two micro-batches of the file, after the first was written
    assert (first_new - 1) % MIXED_BATCH == 0 and MIXED_BATCH < first_new < lines


def test_the_challenger_watch_follows_the_registry_and_stops_once_none_is_left(
    training_result: TrainingResult, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    first = export_model(training_result, models_dir, Bands()).version
    a, b = _unpointed(training_result, models_dir, 2)
    assert len({first, a, b}) == 3
    record(models_dir, "applicant", [Change(a, CHALLENGER, "retrain", "test")])
    clock = FakeClock()
    watch = ChallengerWatch(
        models_dir, "applicant", load_model(models_dir, a), interval_s=5, clock=clock
    )
    assert watch.current().version == a  # type: ignore[union-attr]

    record(models_dir, "applicant", [Change(b, CHALLENGER, "retrain", "test")])
    clock.now += 4.9
    assert watch.current().version == a  # type: ignore[union-attr]
    clock.now += 0.2
    assert watch.current().version == b  # type: ignore[union-attr]  # the latest challenger

    # b promoted: it is the champion now, so a (still a challenger) shadows again.
    record(models_dir, "applicant", [Change(b, CHAMPION, "promote", "test")])
    clock.now += 5
    assert watch.current().version == a  # type: ignore[union-attr]
    # No challenger left: shadowing stops rather than compare the champion with itself.
    record(models_dir, "applicant", [Change(a, RETIRED, "not needed", "test")])
    clock.now += 5
    assert watch.current() is None and watch.refused is None


def test_a_challenger_registered_mid_run_shadows_from_the_next_batch(
    training_result: TrainingResult,
    events_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    models_dir = home / "models"
    champion = export_model(training_result, models_dir, Bands()).version
    a, b = _unpointed(training_result, models_dir, 2)
    record(models_dir, "applicant", [Change(a, CHALLENGER, "retrain", "test")])
    settings = Settings(home=home, store_url=f"chdb://{tmp_path / 'store'}", batch_size=BATCH)
    writes: list[int] = []

    def register_after_first_write(stats: RunStats) -> None:
        writes.append(stats.sent)
        if len(writes) == 1:
            record(models_dir, "applicant", [Change(b, CHALLENGER, "retrain", "mid-run")])

    model = load_model(models_dir)
    watch = ChallengerWatch(models_dir, "applicant", load_model(models_dir, a), interval_s=0)
    options = RunOptions(on_write=register_after_first_write, shadow_watch=watch)
    stats = run_files([events_file(N)], settings, model, options)
    assert (stats.sent, stats.scored, stats.dead_lettered) == (N, N, 0)

    rows = query_rows(
        settings.store,
        "SELECT r.origin AS origin, s.champion_version AS champion,"
        " s.challenger_version AS challenger FROM shadow_scores AS s FINAL"
        " JOIN raw_events AS r FINAL USING event_id",
    )
    # Every scored event has one shadow row, by the champion and one challenger each.
    assert len(rows) == N == len({r["origin"] for r in rows})
    assert {r["champion"] for r in rows} == {champion}
    line = {int(r["origin"].rsplit(":", 1)[1]): r["challenger"] for r in rows}
    switch = min(n for n, version in line.items() if version == b)
    assert all(version == (a if n < switch else b) for n, version in line.items())
    assert (switch - 1) % BATCH == 0 and BATCH < switch < N
