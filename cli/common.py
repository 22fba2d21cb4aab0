"""What every command shares: settings from the edge, and user errors as one line + exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from flows.errors import RiskctlError
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


class UsageError(RiskctlError):
    """A command was given input it cannot use; exits with code 2."""


def fail(message: str, exit_code: int = 1) -> typer.Exit:
    """Print one error line and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Every :class:`RiskctlError` becomes one line on stderr and a non-zero exit."""
    try:
        yield
    except UsageError as exc:
        raise fail(str(exc), 2) from None
    except RiskctlError as exc:
        raise fail(str(exc), 1) from None


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
    if brokers or partitions:
        kafka = replace(
            cfg.kafka,
            brokers=brokers or cfg.kafka.brokers,
            partitions=partitions or cfg.kafka.partitions,
        )
        cfg = replace(cfg, kafka=kafka)
    return cfg
