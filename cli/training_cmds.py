"""``riskctl train``, ``riskctl export``, ``riskctl train-behaviour``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli import training_tables
from cli.common import HomeOption, UsageError, console, settings, user_errors
from flows.settings import MODEL_KINDS, Settings
from training.defaults import (
    BEHAVIOUR_SEED,
    DEFAULT_MONTHS,
    DEFAULT_REPEATS,
    DEFAULT_SEED,
    HORIZON_MONTHS,
    MAX_MONTHS,
)

if TYPE_CHECKING:
    from training.train import TrainingResult

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
RepeatsOption = Annotated[
    int,
    typer.Option(
        "--repeats",
        min=1,
        max=200,
        help="Stratified 80/20 splits the whole pipeline is rerun on to measure held-out AUC "
        "(split 1 is --seed's, the one the exported model is trained on; the others follow at "
        "consecutive seeds).",
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
        max=MAX_MONTHS,
        help="Months of repayment history observed per loan (each label then looks "
        f"{HORIZON_MONTHS} months further).",
    ),
]


KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="Only this origination model kind: applicant (no LendingClub grade or rate) or "
        "priced (may use them). Default: both.",
        show_default=False,
    ),
]


# The pricing benchmarks by the event field they come from, short enough for a narrow terminal.
def _kinds(kind: str | None) -> tuple[str, ...]:
    if kind is None:
        return MODEL_KINDS
    if kind not in MODEL_KINDS:
        raise UsageError(f"--kind must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    return (kind,)


def _export(result: TrainingResult, cfg: Settings) -> tuple[str, str]:
    """Publish, put forward; the version and the stage it reached."""
    # Imported here: skl2onnx and onnx take a second to import and only export needs them.
    from training.export import export_model

    report = export_model(result, cfg.models_dir, cfg.bands, make_current=False)
    console.print(
        f"exported [bold]{report.version}[/] to {report.path}; ONNX parity max |diff| "
        f"{report.parity_max_diff:.2e} on {len(result.x_test)} held-out rows; batch scoring "
        f"{report.score_us_per_row:.2f} µs/row",
        soft_wrap=True,
    )
    return report.version, put_forward(cfg, report.version)


def put_forward(cfg: Settings, version: str) -> str:
    """Promote a new version through the gate; a refusal leaves it a challenger and says so.
    Returns the stage it reached."""
    from flows.model_registry import CHALLENGER, CHAMPION
    from training.lifecycle import PromotionRefused, promote

    try:
        done = promote(cfg.models_dir, version)
    except PromotionRefused as refused:
        console.print(f"not promoted: {refused}", soft_wrap=True, highlight=False)
        return CHALLENGER
    verb = "the first" if done.replaced is None else f"passed the gate; {done.replaced} retired"
    console.print(f"{version} is now the {done.kind} champion ({verb})", soft_wrap=True)
    return CHAMPION


def train_command(
    home: HomeOption = None,
    seed: SeedOption = DEFAULT_SEED,
    no_export: NoExportOption = False,
    kind: KindOption = None,
    repeats: RepeatsOption = DEFAULT_REPEATS,
) -> None:
    """Train the origination scorecards on LendingClub loans, evaluate and export them."""
    from training.dataset import load_lending_club
    from training.matrix import application_matrix
    from training.runs import record_run, training_run
    from training.staging import save_staged
    from training.train import train

    with user_errors():
        cfg = settings(home=home)
        kinds = _kinds(kind)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        results = []
        with progress:
            task = progress.add_task("loading LendingClub loans", total=None)

            def on_step(label: str, done: int, total: int) -> None:
                progress.update(task, description=label, completed=done, total=total)

            data = load_lending_club()
            matrix = application_matrix(data)
            for chosen in kinds:
                results.append(
                    train(
                        data,
                        kind=chosen,
                        seed=seed,
                        on_step=on_step,
                        matrix=matrix,
                        repeats=repeats,
                    )
                )
        for result in results:
            staged = save_staged(result, cfg.home)
            console.print(training_tables.metrics_table(result))
            console.print(training_tables.repeated_table(result))
            console.print(training_tables.calibration_table(result))
            console.print(training_tables.points_table(result))
            test, repeated = result.champion.test, result.repeated
            console.print(
                f"{result.kind}: held-out AUC {test['auc']:.4f}, KS {test['ks']:.4f}, "
                f"CV AUC {result.champion.cv['auc']['mean']:.4f}; mean held-out AUC over "
                f"{training_tables.splits(repeated['repeats'])} {repeated['auc']['mean']:.4f}; "
                f"trained in {result.training_seconds:.1f} s (the repeated splits "
                f"{repeated['seconds']:.1f} s); staged in {staged.parent}",
                soft_wrap=True,
            )
        if no_export:
            for result in results:
                record_run(cfg.models_dir, training_run(result, None, "staged"))
            console.print("not exported (--no-export); publish with `riskctl export`")
            return
        for result in results:
            version, stage = _export(result, cfg)
            record_run(cfg.models_dir, training_run(result, version, stage))


def export_command(home: HomeOption = None, kind: KindOption = None) -> None:
    """Export the staged models of the last `riskctl train` as the current versions."""
    from training.staging import load_staged

    with user_errors():
        cfg = settings(home=home)
        staged = [load_staged(cfg.home, chosen) for chosen in _kinds(kind)]
        for result in staged:
            _export(result, cfg)


def train_behaviour_command(
    home: HomeOption = None,
    seed: BehaviourSeedOption = BEHAVIOUR_SEED,
    months: MonthsOption = DEFAULT_MONTHS,
) -> None:
    """Train the behavioural (live PD) model on derived repayment histories and export it."""
    from training import behaviour
    from training.dataset import load_lending_club
    from training.runs import behaviour_run, record_run

    with user_errors():
        cfg = settings(home=home)
        origination = behaviour.load_origination(cfg.models_dir, cfg.model_kind)
        with console.status("replaying repayment histories and training"):
            result = behaviour.train_behaviour(
                load_lending_club(), origination, seed=seed, months=months
            )
        # Imported here: skl2onnx and onnx take a second to import and only export needs them.
        from training.behaviour_export import export_behaviour

        report = export_behaviour(result, cfg.models_dir, make_current=False)
        for table in training_tables.behaviour_tables(result):
            console.print(table)
        console.print(
            f"exported [bold]{report.version}[/] to {report.path}; trained in "
            f"{result.training_seconds:.1f} s on PDs of origination model "
            f"{result.origination_version}; ONNX parity max |diff| "
            f"{report.parity_max_diff:.2e} on {len(result.x_test)} test rows",
            soft_wrap=True,
        )
        stage = put_forward(cfg, report.version)
        record_run(cfg.models_dir, behaviour_run(result, report.version, stage))


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("export")(export_command)
    app.command("train-behaviour")(train_behaviour_command)
