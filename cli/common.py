"""What every command shares: settings from the edge, and user errors as one line + exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from flows.errors import RiskctlError, UsageError
from flows.settings import Settings, from_env

console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Data directory for the embedded store and models "
        "(env: RISKCTL_HOME; default ./.riskctl)",
        show_default=False,
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL: chdb:///path (embedded) or http(s)://user:pass@host:port/db "
        "(env: RISKCTL_STORE; default: the embedded store under --home)",
        show_default=False,
    ),
]
DashboardsOption = Annotated[
    Path | None,
    typer.Option(
        "--dashboards",
        help="Directory of dashboard JSON files (default: the ones shipped with riskctl).",
        show_default=False,
    ),
]


__all__ = [
    "UsageError",
    "check_directory",
    "check_output_file",
    "fail",
    "settings",
    "user_errors",
]


def fail(message: str, exit_code: int = 1) -> typer.Exit:
    """Print one error line and return the exit to raise."""
    # One line whatever the message holds; Text, not markup, so brackets in it stay as typed.
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    err_console.print(
        Text.assemble(("error:", "bold red"), " ", line), highlight=False, soft_wrap=True
    )
    return typer.Exit(exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Every :class:`RiskctlError` becomes one line on stderr and its type's exit code
    (2 for :class:`UsageError`, the user's input; 1 otherwise)."""
    try:
        yield
    except RiskctlError as exc:
        raise fail(str(exc), exc.exit_code) from None


BrokersOption = Annotated[
    str | None,
    typer.Option("--brokers", help="Kafka bootstrap servers (env: RISKCTL_KAFKA_BROKERS)."),
]


def settings(
    home: Path | None = None,
    store: str | None = None,
    brokers: str | None = None,
    partitions: int | None = None,
    **overrides: object,
) -> Settings:
    """Environment settings with the command's options on top; call inside :func:`user_errors`."""
    cfg = from_env().with_overrides(home=home, store_url=store, **overrides)
    if cfg.home.exists() and not cfg.home.is_dir():
        raise UsageError(f"the data directory {cfg.home} (--home, RISKCTL_HOME) is a file")
    if store is not None:
        # A --store that cannot work is said before any work, not when the store is first opened.
        cfg.store.check_directory()
    if brokers is not None or partitions is not None:
        # `is not None`: an empty or zero value is a mistake to report, not a default to keep.
        kafka = replace(
            cfg.kafka,
            brokers=cfg.kafka.brokers if brokers is None else brokers,
            partitions=cfg.kafka.partitions if partitions is None else partitions,
        )
        cfg = replace(cfg, kafka=kafka)
    return cfg


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be a file: checked up front so a
    long run does not end in an OS error."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file name")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a directory")


def check_directory(path: Path | None, option: str) -> None:
    """Refuse, before any work, a directory option that names an existing file."""
    if path is not None and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give a directory")
