"""``riskctl archive``: raw events, dead letters and drift reports to S3 as hourly Parquet;
and the ``riskctl replay --from-s3`` side that replays an archive through the flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.common import HomeOption, StoreOption, UsageError, console, settings, user_errors
from cli.drift_cmd import FromOption, SinceOption, ToOption, report_dir
from flows.settings import Settings
from flows.times import resolve_window

if TYPE_CHECKING:
    from flows.archive import ArchiveSummary, Location


def _location(cfg: Settings, bucket: str | None, prefix: str | None) -> Location:
    from flows.archive import Location, parse_location

    name = bucket or cfg.s3.bucket
    if not name:
        raise UsageError("no bucket: pass --bucket or set RISKCTL_S3_BUCKET")
    if name.startswith("s3://"):
        return parse_location(name, prefix if prefix is not None else cfg.s3.prefix)
    return Location(name, (prefix if prefix is not None else cfg.s3.prefix).strip("/"))


def summary_table(summary: ArchiveSummary) -> Table:
    table = Table(title=f"Archived to {summary.location.uri()}", header_style="bold")
    for name in ("dataset", "objects", "uploaded", "unchanged", "rows", "MiB"):
        table.add_column(name, justify="left" if name == "dataset" else "right")
    for dataset, t in summary.by_dataset().items():
        table.add_row(
            dataset,
            f"{t['objects']:,}",
            f"{t['uploaded']:,}",
            f"{t['unchanged']:,}",
            f"{t['rows']:,}" if dataset != "reports/drift" else "",
            f"{t['bytes'] / 2**20:,.2f}",
        )
    return table


def archive_command(
    since: SinceOption = None,
    start: FromOption = None,
    end: ToOption = None,
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="Bucket, or s3://bucket/prefix (env RISKCTL_S3_BUCKET)."),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Key prefix inside the bucket (env RISKCTL_S3_PREFIX; riskctl)."),
    ] = None,
    reports: Annotated[
        bool, typer.Option("--reports/--no-reports", help="Also archive drift reports.")
    ] = True,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Archive every hour the window touches (events by event time, dead letters by arrival).

    Endpoint and credentials come from RISKCTL_S3_ENDPOINT_URL, RISKCTL_S3_REGION,
    RISKCTL_S3_ACCESS_KEY_ID and RISKCTL_S3_SECRET_ACCESS_KEY (or boto3's usual AWS chain).
    """
    from flows.archive import archive, make_client

    with user_errors():
        cfg = settings(home, store)
        window = resolve_window(since, start, end)
        location = _location(cfg, bucket, prefix)
        client = make_client(cfg.s3)
        summary = archive(
            cfg.store,
            client,
            location,
            window,
            cfg.home / "archive" / "staging",
            reports=report_dir(cfg) if reports else None,
        )
    if not summary.objects:
        console.print("nothing to archive in that window", highlight=False)
        return
    console.print(summary_table(summary))
    changed = sum(1 for m in summary.manifests if m.uploaded)
    console.print(
        f"{len(summary.manifests)} manifest(s), {changed} updated; every object verified "
        "by size and checksum",
        highlight=False,
    )


def replay_archive(uri: str, rescore: bool = False) -> None:
    """``riskctl replay --from-s3 s3://bucket/prefix [--rescore]``: rebuild the store
    (RISKCTL_STORE / RISKCTL_HOME) from the archive: the issued scores restored as they were,
    the events replayed through the flow; with ``rescore``, every event scored by the current
    model instead."""
    from flows.archive import list_archive, make_client, parse_location
    from flows.jobs import run_archive
    from flows.model import load_model

    with user_errors():
        cfg = settings()
        location = parse_location(uri, cfg.s3.prefix)
        model = load_model(cfg.models_dir, kind=cfg.model_kind)
        files = list_archive(make_client(cfg.s3), location)
        how = "re-scoring every event" if rescore else "restoring the issued scores"
        console.print(
            f"replaying {len(files):,} archived object(s) from {location.uri()} into "
            f"{cfg.store.redacted()}, {how}; model {model.version} scores "
            "any event without an archived score",
            highlight=False,
        )
        done = run_archive(cfg, model, location, lambda: make_client(cfg.s3), rescore=rescore)
    stats = done.stats
    restored = ", ".join(f"{n:,} {table}" for table, n in done.restored.items()) or "none"
    console.print(
        f"restored as issued: {restored}; replayed {stats.sent:,} events: {stats.scored:,} "
        f"scored now, {stats.dead_lettered:,} dead-lettered, {stats.duplicates:,} already stored",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("archive")(archive_command)
