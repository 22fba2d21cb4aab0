"""``riskctl``: train, replay, run, migrate and query the loan default risk platform."""

from __future__ import annotations

import typer

from cli import (
    archive_cmd,
    bench_cmd,
    demo_cmd,
    drift_cmd,
    grafana_cmds,
    replay_cmd,
    report_cmd,
    run_cmd,
    score_cmd,
    store_cmds,
    topics_cmds,
    training_cmds,
    users_cmd,
)

app = typer.Typer(
    name="riskctl",
    help="Real-time loan default risk: train on LendingClub loans, stream events through the "
    "Bytewax dataflow into ClickHouse, and ask it questions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (
    training_cmds,
    replay_cmd,
    run_cmd,
    topics_cmds,
    store_cmds,
    score_cmd,
    demo_cmd,
    bench_cmd,
    drift_cmd,
    archive_cmd,
    report_cmd,
    grafana_cmds,
    users_cmd,
):
    module.register(app)

if __name__ == "__main__":
    app()
