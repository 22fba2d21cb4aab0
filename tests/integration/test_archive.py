"""The S3 archive against moto's S3 server on loopback: archive -> list -> read back equals the
store, re-archiving is idempotent, a late event rewrites only its hour, uploads are multipart,
retried and verified, and a rebuild from the archive reproduces the tables and every view.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.archive import (
    ArchiveError,
    ArchiveSummary,
    Location,
    Transfer,
    VerificationError,
    archive,
    list_archive,
    make_client,
    read_dataset,
    upload_verified,
)
from flows.archive.s3 import digest_file, verify
from flows.clock import utc_now
from flows.drift import measure
from flows.drift_report import write_report
from flows.jobs import RunOptions, run_archive, run_files
from flows.model import ScoringModel, load_model
from flows.settings import DriftSettings, S3Settings, Settings
from flows.store import StoreURL, open_store
from flows.times import Window
from tests.conftest import query_rows
from tests.s3_fixtures import FlakyProxy, new_bucket, s3_endpoint, s3_settings  # noqa: F401
from training.dataset import LendingClub, application_record, iter_rows
from training.replay import ReplayPlan, application_events

START = datetime(2024, 3, 1, 21, 30, tzinfo=UTC)  # 2,400 events 20 s apart: 14 hours, 2 days
EVENTS = 2400
# Processing (scoring, archiving) happens from this moment on: the processing_clock fixture.
PROCESSING_EPOCH = datetime(2024, 3, 4, 6, 0, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("processing_clock")
MiB = 1024 * 1024


@dataclass
class Archived:
    settings: Settings
    location: Location
    window: Window
    first: ArchiveSummary
    again: ArchiveSummary
    after_late: ArchiveSummary
    reports: list[Path]


def _late_events(data: LendingClub, n: int) -> bytes:
    """Real loans under new ids whose event time falls in an hour archived before."""
    encoder = msgspec.json.Encoder()
    rows = list(iter_rows(data))[:n]
    when = datetime(2024, 3, 1, 23, 59, 0, tzinfo=UTC)
    return b"".join(
        encoder.encode(application_record(row, f"LC{number:05d}-late", when)) + b"\n"
        for number, row in rows
    )


@pytest.fixture(scope="module")
def archived(
    processing_clock: datetime,
    tmp_path_factory: pytest.TempPathFactory,
    lending_club: LendingClub,
    trained_home: Path,
    model: ScoringModel,
    s3_settings: S3Settings,  # noqa: F811
    new_bucket: Callable[[], str],  # noqa: F811
) -> Archived:
    tmp = tmp_path_factory.mktemp("archive")
    cfg = Settings(home=tmp / "home", store_url=f"chdb://{tmp / 'store'}", batch_size=500)
    events = tmp / "events.jsonl"
    plan = ReplayPlan(
        max_events=EVENTS, seed=3, start=START, spacing=timedelta(seconds=20), corrupt_share=0.05
    )
    events.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
    # The priced model shadows the champion, so the archive holds a challenger's scores too.
    shadow = load_model(trained_home / "models", kind="priced")
    run_files([events], cfg, model, RunOptions(shadow=shadow))

    day_start = START.replace(hour=0, minute=0)
    db = open_store(cfg.store)
    try:
        drift = measure(db, model.card, Window(day_start, utc_now()), DriftSettings())
    finally:
        db.close()
    reports = list(write_report(drift, tmp / "reports"))
    window = Window(day_start, utc_now() + timedelta(minutes=1))

    client = make_client(s3_settings)
    location = Location(new_bucket(), "riskctl")
    staging = tmp / "staging"
    first = archive(cfg.store, client, location, window, staging, reports=tmp / "reports")
    again = archive(cfg.store, client, location, window, staging, reports=tmp / "reports")
    late = tmp / "late.jsonl"
    late.write_bytes(_late_events(lending_club, 5))
    run_files([late], cfg, model)
    after_late = archive(
        cfg.store, client, location, Window(utc_now() - timedelta(hours=1),
        utc_now() + timedelta(minutes=1)), staging, reports=None,
    )  # fmt: skip
    return Archived(cfg, location, window, first, again, after_late, reports)


def _store_table(url: StoreURL, table: str, key: str) -> pa.Table:
    db = open_store(url)
    try:
        return db.query_arrow(f"SELECT * FROM {table} FINAL ORDER BY {key}")
    finally:
        db.close()


def test_archive_is_hourly_parquet_with_daily_manifests(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
) -> None:
    client = make_client(s3_settings)
    keys = {
        item["Key"] for item in client.list_objects_v2(Bucket=archived.location.bucket)["Contents"]
    }
    raw_hours = {
        f"riskctl/raw_events/date={h:%Y-%m-%d}/hour={h:%H}/data.parquet"
        for h in (START + timedelta(seconds=20 * i) for i in range(EVENTS))
    }
    assert len(raw_hours) == 14
    assert raw_hours <= keys
    assert "riskctl/raw_events/date=2024-03-01/_manifest.json" in keys
    assert "riskctl/raw_events/date=2024-03-02/_manifest.json" in keys
    assert any(k.startswith("riskctl/dead_letters/date=") for k in keys)
    report_keys = {k for k in keys if k.startswith("riskctl/reports/drift/")}
    assert {k.rsplit("/", 1)[1] for k in report_keys} >= {p.name for p in archived.reports}

    by_dataset = archived.first.by_dataset()
    assert by_dataset["raw_events"]["objects"] == 14
    assert by_dataset["raw_events"]["rows"] == EVENTS
    assert by_dataset["reports/drift"]["objects"] == 2

    # Every manifest entry matches the object's bytes.
    files = list_archive(client, archived.location)
    assert sum(f.rows for f in files if f.dataset == "raw_events") == EVENTS + 5
    for f in files:
        body = client.get_object(Bucket=archived.location.bucket, Key=f.key)["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (f.size, f.sha256)
    manifest = json.loads(
        client.get_object(
            Bucket=archived.location.bucket,
            Key="riskctl/raw_events/date=2024-03-01/_manifest.json",
        )["Body"].read()
    )
    hour_22 = manifest["objects"]["hour=22/data.parquet"]
    assert hour_22["rows"] == 180  # one event per 20 s for a whole hour
    assert hour_22["counts"] == {"loan_application": 180}


def test_read_back_equals_the_source_rows(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
) -> None:
    client = make_client(s3_settings)
    url = archived.settings.store
    raw = read_dataset(client, archived.location, "raw_events").sort_by("event_id")
    source = _store_table(url, "raw_events", "event_id")
    assert raw.num_rows == source.num_rows == EVENTS + 5
    assert raw.drop_columns(["source_time"]).equals(source.select(raw.column_names[:-1]))
    scored = query_rows(url, "SELECT source_time FROM scored_events FINAL ORDER BY event_id")
    assert raw.column("source_time").to_pylist() == [r["source_time"] for r in scored]

    dead = read_dataset(client, archived.location, "dead_letters").sort_by("dead_letter_id")
    source_dead = _store_table(url, "dead_letters", "dead_letter_id")
    assert dead.num_rows == source_dead.num_rows > 0
    assert dead.equals(source_dead.select(dead.column_names))


def test_rearchiving_is_idempotent_and_a_late_event_rewrites_only_its_hour(
    archived: Archived,
) -> None:
    first, again = archived.first, archived.again
    assert [o.key for o in again.objects] == [o.key for o in first.objects]
    assert [o.sha256 for o in again.objects] == [o.sha256 for o in first.objects]
    assert all(o.uploaded for o in first.objects)
    assert not any(o.uploaded for o in again.objects)
    assert not any(m.uploaded for m in again.manifests)

    # The late events belong to 23:00 on 1 March: that hour's events and scores are rewritten
    # in place with five more rows, and so are their day's manifests; every other hour is left
    # as it was.
    rewritten = [o for o in archived.after_late.objects if o.uploaded]
    assert [o.key for o in rewritten] == [
        f"riskctl/{name}/date=2024-03-01/hour=23/data.parquet"
        for name in ("raw_events", "scored_events")
    ]
    for obj in rewritten:
        before = next(o for o in first.objects if o.key == obj.key)
        assert obj.rows == before.rows + 5
    assert [m.key for m in archived.after_late.manifests if m.uploaded] == [
        f"riskctl/{name}/date=2024-03-01/_manifest.json" for name in ("raw_events", "scored_events")
    ]


def _nan_as_null(table: pa.Table) -> pa.Table:
    """NaN (a feature that was absent) never equals itself; compare it as a null instead."""
    columns = []
    for column in table.columns:
        if pa.types.is_floating(column.type):
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


# Float sums in the views depend on how rows were grouped into inserts (the rebuild uses other
# batches), so they are compared rounded, well below any figure a report shows.
_PD_SUM = "round(sum(pd_lifetime_sum), 9)"
_EL_SUM = "round(sum(expected_loss_lifetime), 6)"

VIEW_QUERIES = {
    "scored_events": "SELECT * EXCEPT processed_at FROM scored_events FINAL ORDER BY event_id",
    "raw_events": "SELECT * FROM raw_events FINAL ORDER BY event_id",
    "dead_letters": "SELECT * FROM dead_letters FINAL ORDER BY dead_letter_id",
    "risk_band_minute": f"SELECT minute, band, model_version, sum(loans), {_PD_SUM},"
    f" quantilesMerge(0.5, 0.9, 0.95, 0.99)(pd_lifetime_quantiles), sum(exposure), {_EL_SUM}"
    " FROM risk_band_minute GROUP BY minute, band, model_version"
    " ORDER BY minute, band, model_version",
    "risk_by_grade_day": f"SELECT day, grade, sub_grade, band, sum(loans), {_PD_SUM},"
    f" sum(exposure), {_EL_SUM} FROM risk_by_grade_day"
    " GROUP BY day, grade, sub_grade, band ORDER BY day, grade, sub_grade, band",
    "risk_by_state_day": f"SELECT day, addr_state, band, sum(loans), {_PD_SUM}, sum(exposure),"
    f" {_EL_SUM} FROM risk_by_state_day GROUP BY day, addr_state, band"
    " ORDER BY day, addr_state, band",
    "loan_latest_score": "SELECT * EXCEPT processed_at FROM loan_latest_score FINAL"
    " ORDER BY loan_id",
    "watchlist": "SELECT * FROM watchlist",
    "dead_letters_minute": "SELECT minute, reason, sum(dead_letters) FROM dead_letters_minute"
    " GROUP BY minute, reason ORDER BY minute, reason",
}


def _snapshot(url: StoreURL) -> dict[str, pa.Table]:
    db = open_store(url)
    try:
        return {name: _nan_as_null(db.query_arrow(sql)) for name, sql in VIEW_QUERIES.items()}
    finally:
        db.close()


def test_rebuild_from_the_archive_reproduces_tables_and_views(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
    model: ScoringModel,
    tmp_path: Path,
) -> None:
    fresh = Settings(home=tmp_path, store_url=f"chdb://{tmp_path / 'rebuilt'}", batch_size=700)
    done = run_archive(fresh, model, archived.location, lambda: make_client(s3_settings))
    # every score is restored as issued; the flow scores none again
    assert done.restored == {"scored_events": EVENTS + 5, "shadow_scores": EVENTS}
    stats = done.stats
    assert stats.scored == 0 and stats.duplicates == EVENTS + 5 and stats.dead_lettered > 0
    original, rebuilt = _snapshot(archived.settings.store), _snapshot(fresh.store)
    for name in VIEW_QUERIES:
        assert original[name].num_rows > 0, name
        assert rebuilt[name].equals(original[name]), name
    issued = "SELECT event_id, processed_at FROM scored_events FINAL ORDER BY event_id"
    assert query_rows(fresh.store, issued) == query_rows(archived.settings.store, issued)

    # Replaying the same archive again adds nothing.
    again = run_archive(fresh, model, archived.location, lambda: make_client(s3_settings))
    assert set(again.restored.values()) == {0}
    assert again.stats.scored == 0 and again.stats.dead_lettered == 0
    assert again.stats.duplicates == again.stats.sent


_ISSUED = (
    "SELECT event_id, pd_lifetime AS pd, band, model_version, model_kind FROM scored_events FINAL "
    "ORDER BY event_id"
)
_SHADOWED = (
    "SELECT event_id, champion_version, challenger_version, champion_pd_lifetime,"
    " challenger_pd_lifetime, challenger_band FROM shadow_scores FINAL ORDER BY event_id"
)


def test_a_rebuild_keeps_the_issued_scores_whatever_model_is_current(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
    trained_home: Path,
    model: ScoringModel,
    tmp_path: Path,
) -> None:
    other = load_model(trained_home / "models", kind="priced")
    assert other.version != model.version
    issued = query_rows(archived.settings.store, _ISSUED)
    assert {r["model_version"] for r in issued} == {model.version}

    kept = Settings(home=tmp_path, store_url=f"chdb://{tmp_path / 'kept'}", batch_size=700)
    shadowed = query_rows(archived.settings.store, _SHADOWED)
    assert len(shadowed) == len(issued) - 5  # the late events ran without a challenger
    done = run_archive(kept, other, archived.location, lambda: make_client(s3_settings))
    assert done.restored["scored_events"] == len(issued)
    assert query_rows(kept.store, _ISSUED) == issued
    # The challenger's scores come back as they were, and the replay adds none of its own.
    assert done.restored["shadow_scores"] == len(shadowed)
    assert query_rows(kept.store, _SHADOWED) == shadowed

    # Asked to re-score, the current model scores every event anew.
    fresh = Settings(home=tmp_path, store_url=f"chdb://{tmp_path / 'rescored'}", batch_size=700)
    done = run_archive(
        fresh, other, archived.location, lambda: make_client(s3_settings), rescore=True
    )
    assert done.restored == {} and done.stats.scored == len(issued)
    rescored = query_rows(fresh.store, _ISSUED)
    assert [r["event_id"] for r in rescored] == [r["event_id"] for r in issued]
    assert {r["model_version"] for r in rescored} == {other.version}
    assert sum(a["pd"] != b["pd"] for a, b in zip(rescored, issued, strict=True)) > len(issued) / 2


def test_the_archive_keeps_the_issued_scores_by_hour(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
) -> None:
    client = make_client(s3_settings)
    scored = read_dataset(client, archived.location, "scored_events").sort_by("event_id")
    source = _store_table(archived.settings.store, "scored_events", "event_id")
    assert scored.num_rows == source.num_rows == EVENTS + 5
    assert _nan_as_null(scored).equals(_nan_as_null(source))
    files = list_archive(client, archived.location, ("scored_events",))
    assert len({f.hour for f in files}) == 14
    manifest = json.loads(
        client.get_object(
            Bucket=archived.location.bucket,
            Key="riskctl/scored_events/date=2024-03-01/_manifest.json",
        )["Body"].read()
    )
    counts = manifest["objects"]["hour=22/data.parquet"]["counts"]
    assert list(counts.values()) == [180]  # by model version: who scored what


def test_multipart_upload_is_verified_and_tampering_is_caught(
    s3_settings: S3Settings,  # noqa: F811
    new_bucket: Callable[[], str],  # noqa: F811
    tmp_path: Path,
) -> None:
    client = make_client(s3_settings)
    bucket = new_bucket()
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * MiB))  # incompressible bytes: a transport test, not data
    transfer = Transfer(threshold=5 * MiB, chunk=5 * MiB)
    done = upload_verified(client, bucket, "big.bin", path, transfer)
    assert (done.parts, done.uploaded, done.verified_by) == (3, True, "sha256")
    head = client.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    body = client.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert body == path.read_bytes()
    assert not upload_verified(client, bucket, "big.bin", path, transfer).uploaded

    # Someone replaces the object but keeps our metadata: the checksum still tells.
    client.put_object(
        Bucket=bucket,
        Key="big.bin",
        Body=b"not the archive",
        Metadata={"sha256": done.sha256},
        ChecksumAlgorithm="SHA256",
    )
    stored = client.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    with pytest.raises(VerificationError, match="size"):
        verify(stored, digest_file(path, transfer.chunk))
    assert upload_verified(client, bucket, "big.bin", path, transfer).uploaded  # healed


def test_a_tampered_archive_object_is_refused_on_read(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
) -> None:
    client = make_client(s3_settings)
    files = list_archive(client, archived.location, ("dead_letters",))
    target = files[0]
    original = client.get_object(Bucket=archived.location.bucket, Key=target.key)["Body"].read()
    client.put_object(Bucket=archived.location.bucket, Key=target.key, Body=original[:-1])
    try:
        with pytest.raises(ArchiveError, match="does not match its manifest"):
            read_dataset(client, archived.location, "dead_letters")
    finally:
        client.put_object(Bucket=archived.location.bucket, Key=target.key, Body=original)


def test_throttled_uploads_are_retried(
    s3_endpoint: str,  # noqa: F811
    s3_settings: S3Settings,  # noqa: F811
    new_bucket: Callable[[], str],  # noqa: F811
    tmp_path: Path,
) -> None:
    bucket = new_bucket()
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"psi": 0.01}))
    with FlakyProxy(s3_endpoint, fail_puts=2) as proxy:
        via_proxy = replace(s3_settings, endpoint_url=proxy.url)
        done = upload_verified(make_client(via_proxy), bucket, "r.json", path, Transfer())
        assert proxy.failed == 2 and done.uploaded
    with FlakyProxy(s3_endpoint, fail_puts=10) as proxy:
        via_proxy = replace(s3_settings, endpoint_url=proxy.url)
        impatient = Transfer(request_attempts=2)
        with pytest.raises(ArchiveError, match="SlowDown"):
            upload_verified(make_client(via_proxy, impatient), bucket, "x.json", path, impatient)


# --- The commands ----------------------------------------------------------------------------


def test_archive_and_replay_from_s3_commands(
    archived: Archived,
    s3_settings: S3Settings,  # noqa: F811
    new_bucket: Callable[[], str],  # noqa: F811
    trained_home: Path,
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    bucket = new_bucket()
    env = {
        "RISKCTL_S3_ENDPOINT_URL": s3_settings.endpoint_url or "",
        "RISKCTL_S3_REGION": s3_settings.region or "",
        "RISKCTL_S3_ACCESS_KEY_ID": s3_settings.access_key_id or "",
        "RISKCTL_S3_SECRET_ACCESS_KEY": s3_settings.secret_access_key or "",
    }
    source = ["--home", str(archived.settings.home), "--store", archived.settings.store.reveal()]
    result = runner.invoke(
        app, ["archive", "--from", "2024-03-01", "--bucket", bucket, *source], env=env
    )
    assert result.exit_code == 0, result.output
    assert "raw_events" in result.output and "verified" in result.output
    assert env["RISKCTL_S3_SECRET_ACCESS_KEY"] not in result.output

    target = StoreURL.embedded_at(tmp_path / "from-s3")
    env_replay = {**env, "RISKCTL_HOME": str(trained_home), "RISKCTL_STORE": target.reveal()}
    result = runner.invoke(app, ["replay", "--from-s3", f"s3://{bucket}/riskctl"], env=env_replay)
    assert result.exit_code == 0, result.output
    assert f"restored as issued: {EVENTS + 5:,} scored_events" in result.output
    counts = query_rows(target, "SELECT count() AS n FROM scored_events")
    assert counts == [{"n": EVENTS + 5}]

    result = runner.invoke(app, ["archive", "--since", "1h", *source], env=env)
    assert result.exit_code == 2 and "no bucket" in result.output
    result = runner.invoke(app, ["replay", "--from-s3", f"s3://{bucket}-missing/x"], env=env_replay)
    assert result.exit_code == 1 and "NoSuchBucket" in result.output, result.output
    assert "Traceback" not in result.output
