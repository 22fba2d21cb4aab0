"""``riskctl demo``: train if needed, replay 10,000 real loans through the flow, show the book."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli.common import HomeOption, StoreOption, UsageError, console, settings, user_errors
from cli.tables import NARROW_WIDTH
from flows.settings import Settings


def demo(
    events: Annotated[int, typer.Option("--events", "-n", help="Real loans to replay.")] = 10_000,
    corrupt: Annotated[
        float, typer.Option(help="Share of events followed by a broken copy, for dead letters.")
    ] = 0.01,
    repayments: Annotated[
        bool,
        typer.Option(
            "--repayments",
            help="Also replay each loan's 12-month repayment history (trains the behavioural "
            "model first if there is none) so the watchlist shows live PDs.",
        ),
    ] = False,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Train (if no model yet), replay real loans through the dataflow, print the portfolio."""
    from cli.portfolio import portfolio, render
    from cli.run_cmd import score_files, summary_table
    from cli.store_cmds import opened
    from cli.training_cmds import train_behaviour_command, train_command
    from flows.model import load_live_model
    from flows.model_cards import current_version

    with user_errors():
        if events < 1:
            raise UsageError("--events must be at least 1")
        if not 0.0 <= corrupt <= 1.0:
            raise UsageError("--corrupt must be between 0 and 1")
        cfg = settings(home, store)
        if current_version(cfg.models_dir, cfg.model_kind) is None:
            console.rule("training a model on LendingClub loans (first run only)")
            # the default split alone: the repeated evaluation is `riskctl train`'s, ~25 s more
            train_command(home=cfg.home, repeats=1)
        if repayments and load_live_model(cfg.models_dir) is None:
            console.rule("training the behavioural model on repayment histories (first run only)")
            train_behaviour_command(home=cfg.home)
        console.rule(
            f"replaying {events:,} real loans" + (" with repayments" if repayments else "")
        )
        # One file per choice of events: a rerun replays the very same bytes, so the store skips
        # every event (a regenerated stream has new times, which would be other content under
        # the same ids: conflicting duplicates).
        kind = "-repayments" if repayments else ""
        path = cfg.home / "demo" / f"events-{events}{kind}-{corrupt:g}.jsonl"
        if path.exists():
            console.print(f"replaying the events of an earlier demo run from {path}")
        else:
            _write_events(path, events, corrupt, repayments)
            console.print(f"events written to {path}")
        stats = score_files([path], cfg, workers=1, label="scoring")
        console.print(summary_table(stats))
        if stats.duplicates:
            console.print(
                f"{stats.duplicates:,} events were already stored by an earlier demo run and were"
                " skipped: the store keeps each event once."
            )
        with opened(cfg.store) as db:
            tables = portfolio(db)
        console.print(render(tables), width=min(console.width, NARROW_WIDTH))
        console.print(where_line(cfg), soft_wrap=True, highlight=False)
        console.print('next: riskctl sql "SELECT band, count() FROM scored_events GROUP BY band"')


def where_line(cfg: Settings) -> str:
    """Where the demo wrote, the store's password redacted."""
    return f"store: {cfg.store.redacted()}    models: {cfg.models_dir}"


def _write_events(path: Path, events: int, corrupt: float, repayments: bool) -> None:
    from training.dataset import load_lending_club
    from training.repayments import mixed_events
    from training.replay import ReplayPlan, application_events

    data = load_lending_club()
    if repayments:
        # Histories run 12 months past origination: start early enough to end about now.
        start = datetime.now(UTC) - timedelta(days=366)
        plan = ReplayPlan(max_events=events, corrupt_share=corrupt, start=start)
        stream = mixed_events(data, plan, months=12)
    else:
        stream = application_events(data, ReplayPlan(max_events=events, corrupt_share=corrupt))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as sink:
        for payload in stream:
            sink.write(payload + b"\n")
    partial.replace(path)  # complete or absent: an interrupted demo writes it again


def register(app: typer.Typer) -> None:
    app.command()(demo)
