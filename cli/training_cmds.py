"""``riskctl train``, ``riskctl export`` and ``riskctl models list``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import HomeOption, console, settings, user_errors
from flows.model import list_models
from flows.settings import Settings
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


def list_command(home: HomeOption = None) -> None:
    """List the model versions in the registry, oldest first."""
    with user_errors():
        cfg = settings(home=home)
        infos = list_models(cfg.models_dir)
        if not infos:
            console.print(f"no models in {cfg.models_dir}; run `riskctl train`", soft_wrap=True)
            return
        table = Table(title=f"Models in {cfg.models_dir}")
        table.add_column("version", no_wrap=True)
        table.add_column("created", no_wrap=True)
        table.add_column("type", overflow="fold")
        table.add_column("test AUC", justify="right")
        table.add_column("current", justify="center")
        for info in infos:
            table.add_row(
                info.version,
                info.created_at,
                info.model_type,
                "-" if info.test_auc is None else f"{info.test_auc:.4f}",
                "*" if info.current else "",
            )
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("export")(export_command)
    models = typer.Typer(help="The model registry.", no_args_is_help=True)
    models.command("list")(list_command)
    app.add_typer(models, name="models")
