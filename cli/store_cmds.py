"""Commands that talk to the store: ``db migrate``, ``sql`` and ``watchlist``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from cli.common import (
    HomeOption,
    StoreOption,
    UsageError,
    console,
    fail,
    settings,
    user_errors,
)
from cli.tables import OutputFormat, rich_table, to_csv, to_json
from flows.store import Store, open_store
from flows.store.migrations import applied, discover, migrate, missing_objects

db_app = typer.Typer(help="Manage the ClickHouse schema.", no_args_is_help=True)


@contextmanager
def opened(url: str) -> Iterator[Store]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


@db_app.command("migrate")
def db_migrate(home: HomeOption = None, store: StoreOption = None) -> None:
    """Apply pending numbered migrations from clickhouse/ in order (idempotent)."""
    with user_errors():
        url = settings(home, store).store
        with opened(url) as db:
            done = migrate(db)
            total = len(applied(db))
        for migration in done:
            console.print(f"applied {migration.path.name}")
        console.print(
            f"{len(done)} migration(s) applied, {total} recorded in {db.description}"
            if done
            else f"schema up to date ({total} migrations) in {db.description}"
        )


@db_app.command("status")
def db_status(home: HomeOption = None, store: StoreOption = None) -> None:
    """List migrations and whether each is applied."""
    with user_errors():
        url = settings(home, store).store
        with opened(url) as db:
            done = applied(db)
            missing = missing_objects(db)
        for migration in discover():
            mark = "applied" if migration.version in done else "pending"
            console.print(f"{migration.path.name:40} {mark}")
        if missing:
            raise fail(f"tables or views missing: {', '.join(missing)}")


def _print(result: object, fmt: OutputFormat, title: str | None = None) -> None:
    import pyarrow as pa

    assert isinstance(result, pa.Table)
    if fmt is OutputFormat.csv:
        typer.echo(to_csv(result), nl=False)
    elif fmt is OutputFormat.json:
        typer.echo(to_json(result))
    else:
        console.print(rich_table(result, title))


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the store.")],
    home: HomeOption = None,
    store: StoreOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Run a SQL query and print the result."""
    with user_errors():
        if not query.strip():
            raise UsageError("the query is empty")
        with opened(settings(home, store).store) as db:
            result = db.query_arrow(query)
        _print(result, output)


def watchlist(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many loans.")] = 10,
    band: Annotated[str | None, typer.Option(help="Only loans in this risk band.")] = None,
    home: HomeOption = None,
    store: StoreOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """The riskiest loans by their latest PD, with the reason codes behind it."""
    with user_errors():
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        with opened(settings(home, store).store) as db:
            result = db.query_arrow(
                "SELECT loan_id, round(pd, 4) AS pd, band, exposure, "
                "round(expected_loss, 2) AS expected_loss, sub_grade, addr_state, reason_codes "
                "FROM watchlist "
                "WHERE {band:String} = '' OR band = {band:String} "
                "LIMIT {limit:UInt32}",
                {"band": band or "", "limit": limit},
            )
        _print(result, output, title=f"Watchlist: top {limit} loans by PD")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command()(sql)
    app.command()(watchlist)
