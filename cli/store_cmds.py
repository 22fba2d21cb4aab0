"""Commands that talk to the store: ``db migrate``, ``sql`` and ``watchlist``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from cli.common import HomeOption, StoreOption, UsageError, console, fail, settings, user_errors
from cli.sql_results import StatementError, one_statement, query_result
from cli.tables import FormatOption, OutputFormat, WideOption, emit
from flows.store import Store, StoreURL, open_store

db_app = typer.Typer(help="Manage the ClickHouse schema.", no_args_is_help=True)


@contextmanager
def opened(url: StoreURL) -> Iterator[Store]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


@db_app.command("migrate")
def db_migrate(home: HomeOption = None, store: StoreOption = None) -> None:
    """Apply pending numbered migrations from clickhouse/ in order (idempotent)."""
    from flows.store.migrations import applied, migrate

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
    from flows.store.migrations import applied, discover, missing_objects

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


def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement to run against the store.")],
    home: HomeOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.table,
    write: Annotated[
        bool, typer.Option("--write", help="Allow a statement that writes (read-only without).")
    ] = False,
    wide: WideOption = False,
) -> None:
    """Run one SQL statement (read-only unless --write) and print the result."""
    with user_errors():
        if not query.strip():
            raise UsageError("the query is empty")
        with opened(settings(home, store).store) as db:
            if not write:
                db.read_only()
            try:
                statement = one_statement(db, query)
            except StatementError as exc:
                raise UsageError(str(exc)) from exc
            result = query_result(db, statement)
        emit(console, result, output, wide=wide)


def watchlist(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many loans.")] = 10,
    band: Annotated[str | None, typer.Option(help="Only loans in this risk band.")] = None,
    home: HomeOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.table,
    wide: WideOption = False,
) -> None:
    """The riskiest loans by their latest PD, with the reason codes behind it."""
    from cli.portfolio import COLUMNS, watchlist_result

    with user_errors():
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        cfg = settings(home, store)
        if band is not None and band not in cfg.bands.names:
            raise UsageError(f"no risk band {band!r} (bands: {', '.join(cfg.bands.names)})")
        with opened(cfg.store) as db:
            result = watchlist_result(db, limit, band)
        emit(console, result, output, f"Watchlist: top {limit} loans by PD", COLUMNS, wide)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command()(sql)
    app.command()(watchlist)
