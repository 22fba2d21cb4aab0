"""``riskctl train``, ``riskctl export``, ``riskctl train-behaviour``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
    from training import behaviour
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
_PRICING_FIELDS = {"sub_grade_rank": "sub_grade", "interest_rate": "int_rate"}


def _kinds(kind: str | None) -> tuple[str, ...]:
    if kind is None:
        return MODEL_KINDS
    if kind not in MODEL_KINDS:
        raise UsageError(f"--kind must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    return (kind,)


def _metrics_table(result: TrainingResult) -> Table:
    c = result.champion
    t = c.test
    lifts = "; ".join(
        f"lift over {_PRICING_FIELDS.get(name, name)} alone {bench['lift']:+.4f} "
        f"({bench['lift_low']:+.3f} to {bench['lift_high']:+.3f})"
        for name, bench in result.benchmarks.items()
    )
    table = Table(
        title=f"{result.kind} scorecard, {len(result.model.characteristics)} characteristics",
        caption=f"CV: same folds for every grid entry, * chosen by mean CV AUC; held-out: the "
        f"test split (bad rate {t['bad_rate']:.4f}), AUC 95% bootstrap interval "
        f"{t['auc_low']:.3f} to {t['auc_high']:.3f}; {lifts}",
    )
    table.add_column("", no_wrap=True)
    for name in ("AUC", "KS", "Brier", "mean PD", "HL p"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in c.grid:
        mark = " *" if row["params"] == c.params else ""
        table.add_row(
            f"CV C={row['params'].get('C')}{mark}", f"{row['auc_mean']:.4f}±{row['auc_std']:.3f}"
        )
    table.add_row(
        "[bold]held-out[/]",
        f"[bold]{t['auc']:.4f}[/]",
        f"{t['ks']:.4f}",
        f"{t['brier']:.4f}",
        f"{t['mean_pd']:.4f}",
        f"{result.hosmer_lemeshow['p_value']:.3f}",
    )
    for name, bench in result.benchmarks.items():
        table.add_row(f"{_PRICING_FIELDS.get(name, name)} alone", f"{bench['auc']:.4f}")
    return table


def _splits(n: int) -> str:
    return "1 split" if n == 1 else f"{n} splits"


def _repeated_calibration(rep: dict) -> str:
    cal = rep["calibration"]
    ratio = cal["mean_pd_to_bad_rate"]
    return (
        f"Mean PD / bad rate {ratio['mean']:.3f} (splits {ratio['low']:.3f} to "
        f"{ratio['high']:.3f}), within 10% on {cal['splits_within_10pct']} of {rep['repeats']} "
        f"splits; Hosmer-Lemeshow p > 0.05 on {cal['splits_hl_p_above_005']}."
    )


def _repeated_table(result: TrainingResult) -> Table:
    """The held-out AUCs and paired lifts over the repeated splits, beside the default split's."""
    rep = result.repeated
    default = rep["default"]
    columns = [("model AUC", rep["auc"], default["auc"], "")]
    for name, bench in rep["benchmarks"].items():
        columns.append((f"{_PRICING_FIELDS.get(name, name)} alone", bench["auc"],
                        default["benchmarks"][name], ""))  # fmt: skip
    for name, bench in rep["benchmarks"].items():
        columns.append((f"lift over {_PRICING_FIELDS.get(name, name)}", bench["lift"],
                        default["auc"] - default["benchmarks"][name], "+"))  # fmt: skip
    above = ", ".join(
        f"{_PRICING_FIELDS.get(name, name)} {bench['splits_above']}"
        for name, bench in rep["benchmarks"].items()
    )
    table = Table(
        title=f"{result.kind} scorecard held out on {_splits(rep['repeats'])}, stratified "
        f"(seeds {rep['seeds'][0]}-{rep['seeds'][-1]}), whole pipeline refitted on each",
        caption="splits 2.5-97.5%: percentiles of the split figures; mean 95%: Student t with "
        "the Nadeau-Bengio correction for the loans the splits share; SEM: sd / sqrt(splits). "
        f"Worst split seed {rep['worst']['seed']}, best seed {rep['best']['seed']}; splits "
        f"where the model's AUC is above: {above}. {_repeated_calibration(rep)}",
    )
    table.add_column("", no_wrap=True)
    for label, *_ in columns:
        table.add_column(label, justify="right")

    def cells(key: str, signed: bool = True) -> list[str]:
        return [
            "-" if s[key] is None else f"{s[key]:{sign if signed else ''}.4f}"
            for _, s, _, sign in columns
        ]

    table.add_row("[bold]mean[/]", *(f"[bold]{c}[/]" for c in cells("mean")))
    table.add_row("SEM", *cells("sem", signed=False))
    for label, key in (("mean 95% low", "mean_low"), ("mean 95% high", "mean_high"),
                       ("splits 2.5%", "low"), ("splits 97.5%", "high"),
                       ("worst split", "worst"), ("best split", "best")):  # fmt: skip
        table.add_row(label, *cells(key))
    table.add_row(
        f"default (seed {default['seed']})", *(f"{d:{sign}.4f}" for _, _, d, sign in columns)
    )
    return table


def _calibration_table(result: TrainingResult) -> Table:
    hl = result.hosmer_lemeshow
    table = Table(
        title=f"Calibration of the {result.kind} scorecard on the held-out split",
        caption=f"Hosmer-Lemeshow {hl['statistic']:.2f} on {hl['df']} df, p = {hl['p_value']:.3f}",
    )
    for name in ("decile", "loans", "bads", "PD range", "predicted", "observed"):
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


def _points_table(result: TrainingResult) -> Table:
    model = result.model
    table = Table(
        title=f"{result.kind} scorecard points (higher is safer) and information value",
        caption="characteristics with one bin or a zero coefficient are left out: "
        + (", ".join(f"{b.name} (IV {b.iv:.3f})" for b in model.dropped) or "none"),
    )
    for name in ("characteristic", "IV", "attribute", "loans", "bad rate", "points"):
        left = name in ("characteristic", "attribute")
        table.add_column(name, justify="left" if left else "right")
    for c, binning in enumerate(model.characteristics):
        bins, missing = model.attribute_points(c)
        rows = [
            (label, count, bads, points)
            for label, count, bads, points in zip(
                binning.labels(), binning.counts, binning.bads, bins, strict=True
            )
        ]
        rows.append(("missing", binning.missing_count, binning.missing_bads, missing))
        for i, (label, count, bads, points) in enumerate(rows):
            table.add_row(
                binning.name if i == 0 else "",
                f"{binning.iv:.3f}" if i == 0 else "",
                label,
                str(count),
                f"{bads / count:.3f}" if count else "-",
                f"{points:.1f}",
            )
    return table


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
    from training.train import save_staged, train

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
                        data, kind=chosen, seed=seed, on_step=on_step, matrix=matrix,
                        repeats=repeats,
                    )
                )
        for result in results:
            staged = save_staged(result, cfg.home)
            console.print(_metrics_table(result))
            console.print(_repeated_table(result))
            console.print(_calibration_table(result))
            console.print(_points_table(result))
            test = result.champion.test
            console.print(
                f"{result.kind}: held-out AUC {test['auc']:.4f}, KS {test['ks']:.4f}, "
                f"CV AUC {result.champion.cv['auc']['mean']:.4f}; mean held-out AUC over "
                f"{_splits(result.repeated['repeats'])} {result.repeated['auc']['mean']:.4f}; "
                f"trained in {result.training_seconds:.1f} s (the repeated splits "
                f"{result.repeated['seconds']:.1f} s); staged in {staged.parent}",
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
    from training.train import load_staged

    with user_errors():
        cfg = settings(home=home)
        staged = [load_staged(cfg.home, chosen) for chosen in _kinds(kind)]
        for result in staged:
            _export(result, cfg)


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
        for table in _behaviour_tables(result):
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
