"""The tables ``riskctl train`` and ``riskctl train-behaviour`` print: pure rendering of a
training result, apart from the commands that run it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from training import behaviour
    from training.train import TrainingResult

_PRICING_FIELDS = {"sub_grade_rank": "sub_grade", "interest_rate": "int_rate"}


def metrics_table(result: TrainingResult) -> Table:
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


def splits(n: int) -> str:
    return "1 split" if n == 1 else f"{n} splits"


def _repeated_calibration(rep: dict) -> str:
    cal = rep["calibration"]
    ratio = cal["mean_pd_to_bad_rate"]
    return (
        f"Mean PD / bad rate {ratio['mean']:.3f} (splits {ratio['low']:.3f} to "
        f"{ratio['high']:.3f}), within 10% on {cal['splits_within_10pct']} of {rep['repeats']} "
        f"splits; Hosmer-Lemeshow p > 0.05 on {cal['splits_hl_p_above_005']}."
    )


def repeated_table(result: TrainingResult) -> Table:
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
        title=f"{result.kind} scorecard held out on {splits(rep['repeats'])}, stratified "
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


def calibration_table(result: TrainingResult) -> Table:
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


def points_table(result: TrainingResult) -> Table:
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


def behaviour_tables(result: behaviour.BehaviourResult) -> tuple[Table, Table]:
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
