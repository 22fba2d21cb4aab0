"""``riskctl train``, ``riskctl export``, ``riskctl train-behaviour``, ``riskctl models list``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import HomeOption, console, settings, user_errors
from cli.sql_results import Result
from cli.tables import Column, FormatOption, Kind, OutputFormat, WideOption, emit
from flows.model import list_models
from flows.settings import Settings
from training import behaviour
from training.dataset import load_lending_club
from training.repayments import DEFAULT_MONTHS
from training.train import DEFAULT_SEED, TrainingResult, load_staged, save_staged, train

SeedOption = Annotated[
    int,
    typer.Option(
        "--seed",
        min=0,
        max=2**32 - 1,
        help="Seed of the train/test split, the CV folds and the models.",
    ),
]
NoExportOption = Annotated[
    bool,
    typer.Option(
        "--no-export",
        help="Train and stage the champion under <home>/training/latest without publishing it; "
        "`riskctl export` publishes it later.",
    ),
]


BehaviourSeedOption = Annotated[
    int,
    typer.Option(
        "--seed",
        min=0,
        max=2**32 - 1,
        help="Seed of the loans' issue times, their derived repayment histories and the model.",
    ),
]
MonthsOption = Annotated[
    int,
    typer.Option(
        "--months",
        min=1,
        max=behaviour.MAX_MONTHS,
        help="Months of repayment history observed per loan (each label then looks "
        f"{behaviour.HORIZON_MONTHS} months further).",
    ),
]


def _candidates_table(result: TrainingResult) -> Table:
    table = Table(
        title="Candidates (CV on the training split, test = held-out split)",
        caption="* champion: best held-out AUC",
    )
    # Numbers never wrap; on a narrow terminal the model and params columns fold instead.
    table.add_column("model", overflow="fold")
    table.add_column("params", overflow="fold")
    table.add_column("CV AUC", justify="right", no_wrap=True)
    for name in ("test AUC", "KS", "Gini", "Brier"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in result.candidates:
        params = " ".join(f"{k}={v}" for k, v in c.params.items()) or "-"
        label = f"{c.name} {c.model_type}" + (" *" if c.champion else "")
        t = c.test
        table.add_row(
            f"[bold]{label}[/]" if c.champion else label,
            params,
            f"{c.cv['auc']['mean']:.4f}±{c.cv['auc']['std']:.4f}",
            f"{t['auc']:.4f}",
            f"{t['ks']:.4f}",
            f"{t['gini']:.4f}",
            f"{t['brier']:.4f}",
        )
    return table


def _calibration_table(result: TrainingResult) -> Table:
    table = Table(title=f"Calibration of {result.champion.name} on the held-out split")
    for name in ("bin", "loans", "bads", "PD range", "predicted", "observed"):
        table.add_column(name, justify="right", no_wrap=name == "PD range")
    for row in result.calibration:
        table.add_row(
            str(row["bin"]),
            str(row["count"]),
            str(row["bads"]),
            f"{row['pd_min']:.4f}-{row['pd_max']:.4f}",
            f"{row['predicted']:.4f}",
            f"{row['observed']:.4f}",
        )
    return table


def _export(result: TrainingResult, cfg: Settings) -> None:
    # Imported here: skl2onnx and onnx take a second to import and only export needs them.
    from training.export import export_model

    report = export_model(result, cfg.models_dir, cfg.bands)
    console.print(
        f"exported [bold]{report.version}[/] to {report.path} (now current); "
        f"ONNX parity max |diff| {report.parity_max_diff:.2e} on {len(result.x_test)} "
        f"held-out rows; batch scoring {report.score_us_per_row:.2f} µs/row",
        soft_wrap=True,
    )


def train_command(
    home: HomeOption = None,
    seed: SeedOption = DEFAULT_SEED,
    no_export: NoExportOption = False,
) -> None:
    """Train the candidate models on LendingClub loans, pick the champion and export it."""
    with user_errors():
        cfg = settings(home=home)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        with progress:
            task = progress.add_task("loading LendingClub loans", total=None)

            def on_step(label: str, done: int, total: int) -> None:
                progress.update(task, description=label, completed=done, total=total)

            result = train(seed=seed, on_step=on_step)
        staged = save_staged(result, cfg.home)
        console.print(_candidates_table(result))
        console.print(_calibration_table(result))
        champion = result.champion
        console.print(
            f"champion: [bold]{champion.name}[/] ({champion.model_type}), held-out AUC "
            f"{champion.test['auc']:.4f}, KS {champion.test['ks']:.4f}; trained in "
            f"{result.training_seconds:.1f} s; staged in {staged.parent}",
            soft_wrap=True,
        )
        if no_export:
            console.print("not exported (--no-export); publish it with `riskctl export`")
            return
        _export(result, cfg)


def export_command(home: HomeOption = None) -> None:
    """Export the staged champion of the last `riskctl train` as the current model version."""
    with user_errors():
        cfg = settings(home=home)
        _export(load_staged(cfg.home), cfg)


def _behaviour_tables(result: behaviour.BehaviourResult) -> tuple[Table, Table]:
    data = result.data
    scores = Table(
        title=f"Out-of-time test: observations from {result.split} "
        f"({data['horizon_months']}-month default after each repayment)",
        caption="origination = the origination model's PD of the same loans",
    )
    scores.add_column("model")
    for name in ("AUC", "KS", "Gini", "Brier"):
        scores.add_column(name, justify="right", no_wrap=True)
    for name, m in (("behavioural", result.test), ("origination", result.origination_test)):
        scores.add_row(name, *(f"{m[k]:.4f}" for k in ("auc", "ks", "gini", "brier")))
    counts = Table(title=f"Observations of {data['loans']} loans (split date {result.split})")
    counts.add_column("set")
    counts.add_column("dated", no_wrap=True)
    counts.add_column("rows", justify="right")
    counts.add_column("label 1", justify="right")
    counts.add_row(
        "train",
        f"{data['train_dates']['first']} .. {data['train_dates']['last']}",
        str(data["train_rows"]),
        str(data["train_bads"]),
    )
    last_embargoed = result.split - timedelta(days=1)
    counts.add_row(
        "neither", f"{result.train_before} .. {last_embargoed}", str(data["embargo_rows"]), "-"
    )
    counts.add_row(
        "test",
        f"{data['test_dates']['first']} .. {data['test_dates']['last']}",
        str(data["test_rows"]),
        str(data["test_bads"]),
    )
    return scores, counts


def train_behaviour_command(
    home: HomeOption = None,
    seed: BehaviourSeedOption = behaviour.DEFAULT_SEED,
    months: MonthsOption = DEFAULT_MONTHS,
) -> None:
    """Train the behavioural (live PD) model on derived repayment histories and export it."""
    with user_errors():
        cfg = settings(home=home)
        origination = behaviour.load_origination(cfg.models_dir)
        with console.status("replaying repayment histories and training"):
            result = behaviour.train_behaviour(
                load_lending_club(), origination, seed=seed, months=months
            )
        # Imported here: skl2onnx and onnx take a second to import and only export needs them.
        from training.behaviour_export import export_behaviour

        report = export_behaviour(result, cfg.models_dir)
        for table in _behaviour_tables(result):
            console.print(table)
        console.print(
            f"exported [bold]{report.version}[/] to {report.path} (now current); trained in "
            f"{result.training_seconds:.1f} s on PDs of origination model "
            f"{result.origination_version}; ONNX parity max |diff| "
            f"{report.parity_max_diff:.2e} on {len(result.x_test)} test rows",
            soft_wrap=True,
        )


def list_command(
    home: HomeOption = None, output: FormatOption = OutputFormat.table, wide: WideOption = False
) -> None:
    """List the model versions in the registry, oldest first."""
    with user_errors():
        cfg = settings(home=home)
        infos = list_models(cfg.models_dir)
        if not infos and output is OutputFormat.table:
            console.print(f"no models in {cfg.models_dir}; run `riskctl train`", soft_wrap=True)
            return
        result = Result.from_records(
            [
                {
                    "version": info.version,
                    "created_at": info.created_at,
                    "model_type": info.model_type,
                    "test_auc": info.test_auc,
                    "current": info.current,
                }
                for info in infos
            ]
        )
        columns = {
            "created_at": Column("created"),
            "model_type": Column("type"),
            "test_auc": Column("test AUC"),
            "current": Column("current", Kind.mark),
        }
        emit(console, result, output, f"Models in {cfg.models_dir}", columns, wide)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("export")(export_command)
    app.command("train-behaviour")(train_behaviour_command)
    models = typer.Typer(help="The model registry.", no_args_is_help=True)
    models.command("list")(list_command)
    app.add_typer(models, name="models")
