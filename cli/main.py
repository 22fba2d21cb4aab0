"""``riskctl``: train, replay, run, migrate and query the loan default risk platform.

The commands are listed here, grouped by task, and imported only when one is run: scikit-learn,
onnxruntime, pyarrow, chDB, Bytewax, confluent-kafka and boto3 take seconds to import, and
``riskctl --help``, ``--version`` and shell completion need none of them.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, wraps
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    # The Click that Typer vendors: its commands take this Context (typer.Context's parent).
    from typer._click import Context as ClickContext

from cli.common import fail
from flows.errors import RiskctlError, UsageError

# Every command object Typer builds (a TyperCommand, or a TyperGroup of them).
Command = TyperCommand | TyperGroup

START = "Start here"
MODELS = "Models"
STREAMING = "Events and the dataflow"
STORE = "Store and queries"
MONITORING = "Monitoring and reports"


@dataclass(frozen=True)
class Entry:
    """A top-level command: where it lives, its help panel and its line in ``riskctl --help``."""

    name: str
    modules: tuple[str, ...]  # each has ``register(app)``, which adds the command
    panel: str
    summary: str


_STORE_MODULES = ("cli.store_cmds", "cli.users_cmd")  # init-users joins the db group

COMMANDS: tuple[Entry, ...] = (
    Entry(
        "demo",
        ("cli.demo_cmd",),
        START,
        "Train (if no model yet), replay real loans through the dataflow, print the portfolio.",
    ),
    Entry(
        "train",
        ("cli.training_cmds",),
        MODELS,
        "Train the origination scorecards on LendingClub loans, evaluate and export them.",
    ),
    Entry(
        "export",
        ("cli.training_cmds",),
        MODELS,
        "Export the staged models of the last `riskctl train` as the current versions.",
    ),
    Entry(
        "train-behaviour",
        ("cli.training_cmds",),
        MODELS,
        "Train the behavioural (live PD) model on derived repayment histories and export it.",
    ),
    Entry(
        "retrain",
        ("cli.retrain_cmd",),
        MODELS,
        "Retrain on the newest data, evaluate against the champion, register a challenger.",
    ),
    Entry(
        "models",
        ("cli.models_cmds",),
        MODELS,
        "The model registry: versions and stages; promote, roll back, show a card.",
    ),
    Entry(
        "score",
        ("cli.score_cmd",),
        MODELS,
        "Score one loan application: PD, risk band, reasons and the model that scored it.",
    ),
    Entry(
        "serve",
        ("cli.serve_cmd",),
        MODELS,
        "Serve loan decisions over HTTP (approve / refer / decline), audited in the store.",
    ),
    Entry(
        "replay",
        ("cli.replay_cmd",),
        STREAMING,
        "Turn real LendingClub loans into loan-application events (JSON lines), reproducibly.",
    ),
    Entry(
        "run",
        ("cli.run_cmd",),
        STREAMING,
        "Run the dataflow: to the end of the input files, or on Kafka (until stopped).",
    ),
    Entry("topics", ("cli.topics_cmds",), STREAMING, "Manage the Kafka topics."),
    Entry(
        "bench",
        ("cli.bench_cmd",),
        STREAMING,
        "Measure the pipeline on real replayed loans: file -> dataflow -> chDB, or from Kafka.",
    ),
    Entry("db", _STORE_MODULES, STORE, "Manage the ClickHouse schema."),
    Entry(
        "sql",
        _STORE_MODULES,
        STORE,
        "Run one SQL statement (read-only unless --write) and print the result.",
    ),
    Entry(
        "watchlist",
        _STORE_MODULES,
        STORE,
        "The riskiest loans by their latest PD, with the reason codes behind it.",
    ),
    Entry(
        "drift",
        ("cli.drift_cmd",),
        MONITORING,
        "Population stability of live scored events against the model's training reference.",
    ),
    Entry(
        "archive",
        ("cli.archive_cmd",),
        MONITORING,
        "Archive every hour the window touches (events by event time, dead letters by arrival).",
    ),
    Entry(
        "report",
        ("cli.report_cmd",),
        MONITORING,
        "Render the Grafana dashboards' panels from the store into one offline HTML page.",
    ),
    Entry("grafana", ("cli.grafana_cmds",), MONITORING, "Publish the dashboards to Grafana."),
)

# One example per runnable command, shown under its --help; a test checks none is missing.
EXAMPLES: dict[str, str] = {
    "demo": "riskctl demo --events 2000",
    "train": "riskctl train --seed 7",
    "export": "riskctl export",
    "train-behaviour": "riskctl train-behaviour --months 12",
    "retrain": "riskctl retrain --kind applicant --auto-promote",
    "models list": "riskctl models list",
    "models show": "riskctl models show 20261122T041500Z-applicant-scorecard --format json",
    "models promote": "riskctl models promote 20261122T041500Z-applicant-scorecard",
    "models rollback": "riskctl models rollback --kind applicant --reason 'PD too high'",
    "models runs": "riskctl models runs --kind priced --format json",
    "score": "riskctl score --file loan.json --format json",
    "serve": "riskctl serve --port 8000 --policy policy.toml",
    "replay": "riskctl replay --max 10000 --out events.jsonl --corrupt 0.01",
    "run": "riskctl run --input events.jsonl",
    "topics create": "riskctl topics create --brokers 127.0.0.1:9092 --partitions 4",
    "topics list": "riskctl topics list --brokers 127.0.0.1:9092",
    "bench": "riskctl bench -n 200000",
    "db migrate": "riskctl db migrate --store http://admin:PASSWORD@localhost:8123/riskctl",
    "db status": "riskctl db status",
    "db init-users": "riskctl db init-users --dry-run --store http://admin:PASSWORD@ch:8123/riskctl",
    "sql": 'riskctl sql "SELECT band, count() AS loans FROM scored_events GROUP BY band"',
    "watchlist": "riskctl watchlist -n 10 --band very_high",
    "drift": "riskctl drift --since 1h",
    "archive": "riskctl archive --since 2h --bucket riskctl-archive",
    "report": "riskctl report --last 7d --out report.html",
    "grafana push": "riskctl grafana push --url http://localhost:3000",
}


def _finite_floats(command: Command) -> None:
    """Refuse nan and infinities in every float option, which no riskctl option means."""
    callback = command.callback
    if callback is None:
        return
    flags = {param.name: (param.opts or [param.name])[0] for param in command.params}

    @wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{flags.get(name, name)} must be a finite number, got {value}")
        return callback(*args, **kwargs)

    command.callback = checked


def _finish(command: Command, path: str) -> None:
    """Give every command the finite-float check and its example."""
    _finite_floats(command)
    subcommands: dict[str, Command] = getattr(command, "commands", {})
    for name, sub in subcommands.items():
        _finish(sub, f"{path} {name}")
    if path in EXAMPLES:
        command.epilog = f"Example: {EXAMPLES[path]}"


@cache
def _loaded(modules: tuple[str, ...]) -> TyperGroup:
    """The commands the modules register, as Click objects (imported on first use only)."""
    app = typer.Typer(rich_markup_mode=None)
    for name in modules:
        importlib.import_module(name).register(app)
    group = typer.main.get_group(app)
    for name, command in group.commands.items():
        _finish(command, name)  # type: ignore[arg-type]
    return group


def load(entry: Entry) -> Command:
    """The real command behind an entry of :data:`COMMANDS`."""
    return _loaded(entry.modules).commands[entry.name]  # type: ignore[return-value]


class LazyCommand(TyperCommand):
    """Stands in for a command in listings; the command itself is imported when it runs."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(
            entry.name, help=entry.summary, short_help=entry.summary, rich_help_panel=entry.panel
        )
        self.entry = entry

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: ClickContext | None = None,
        **extra: Any,
    ) -> ClickContext:
        # The context (and so what is parsed and invoked) is the real command's.
        return load(self.entry).make_context(info_name, args, parent=parent, **extra)


class RiskctlGroup(TyperGroup):
    """The root command: lazy subcommands, and every error a user causes as one line."""

    def list_commands(self, ctx: ClickContext) -> list[str]:
        return [entry.name for entry in COMMANDS]

    def format_commands(self, ctx: ClickContext, formatter: Any) -> None:
        # Plain help with a section per task: Typer's rich help would import rich's markdown,
        # syntax and traceback modules, more than the whole CLI takes to start otherwise.
        width = max(len(entry.name) for entry in COMMANDS)  # one column across the sections
        limit = formatter.width - 6 - width
        for panel in dict.fromkeys(entry.panel for entry in COMMANDS):
            with formatter.section(panel):
                formatter.write_dl(
                    [
                        (entry.name.ljust(width), LazyCommand(entry).get_short_help_str(limit))
                        for entry in COMMANDS
                        if entry.panel == panel
                    ]
                )

    def get_command(self, ctx: ClickContext, cmd_name: str) -> TyperCommand | None:
        for entry in COMMANDS:
            if entry.name == cmd_name:
                return LazyCommand(entry)
        return None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        # Always run as a standalone program (exit codes, not return values): Typer's own
        # standalone handling would print usage errors as a boxed panel.
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # Typer's usage errors: bad options, arguments
            if type(exc).__name__ == "NoArgsIsHelpError":  # as Typer itself tells it apart
                exc.show()  # type: ignore[attr-defined]  # a group without arguments: its help
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _exit(exc.format_message() + where, exc.exit_code)
        except RiskctlError as exc:  # commands catch their own; this is the net under them
            _exit(str(exc), exc.exit_code)
        except typer.Abort:
            _exit("aborted", 1)
        sys.exit(result if isinstance(result, int) else 0)


def _exit(message: str, code: int) -> NoReturn:
    fail(message, code)
    sys.exit(code)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"riskctl {version('riskctl')}")
        raise typer.Exit()


app = typer.Typer(
    name="riskctl",
    cls=RiskctlGroup,
    epilog="Start with `riskctl demo`; `riskctl COMMAND -h` shows a command's options and an "
    "example.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print riskctl's version and exit.",
        ),
    ] = False,
) -> None:
    """Real-time loan default risk: train on LendingClub loans, stream events through the
    Bytewax dataflow into ClickHouse, and ask it questions."""


if __name__ == "__main__":
    app()
