"""``riskctl retrain``: train on the newest data, compare with the champion, register a
challenger (and promote it through the gate with ``--auto-promote``)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import HomeOption, UsageError, console, settings, user_errors
from cli.models_cmds import AucMarginOption, BrierMarginOption
from cli.training_cmds import KindOption, SeedOption, _kinds
from training.defaults import DEFAULT_SEED

ThroughOption = Annotated[
    int | None,
    typer.Option(
        "--through-period",
        min=0,
        help="Train on the loans of periods 0..N only (a simulated earlier period; the data has "
        "no issue date, so loans are dealt into --periods seeded periods). Default: all loans.",
        show_default=False,
    ),
]
PeriodsOption = Annotated[
    int, typer.Option("--periods", min=1, max=100, help="How many simulated periods.")
]
PeriodSeedOption = Annotated[
    int,
    typer.Option("--period-seed", min=0, max=2**32 - 1, help="Seed dealing loans into periods."),
]
AutoPromoteOption = Annotated[
    bool,
    typer.Option(
        "--auto-promote",
        help="Promote the new version if it passes the gate (the first of a kind always).",
    ),
]


def retrain_command(
    home: HomeOption = None,
    kind: KindOption = None,
    seed: SeedOption = DEFAULT_SEED,
    through_period: ThroughOption = None,
    periods: PeriodsOption = 2,
    period_seed: PeriodSeedOption = 2015,
    auto_promote: AutoPromoteOption = False,
    auc_margin: AucMarginOption = 0.0,
    brier_margin: BrierMarginOption = 0.0,
) -> None:
    """Retrain on the newest data, evaluate against the champion, register a challenger."""
    from flows.model_registry import CHALLENGER, CHAMPION
    with user_errors():
        cfg = settings(home=home)
        kinds = _kinds(kind)
        if through_period is not None and through_period >= periods:
            raise UsageError(f"--through-period must be below --periods ({periods})")
        # Imported here: training needs scikit-learn and skl2onnx.
        from training.dataset import load_lending_club
        from training.export import export_model
        from training.gate import Margins
        from training.lifecycle import PromotionRefused, promote, register_challenger
        from training.matrix import application_matrix
        from training.periods import through_period as select_period
        from training.runs import record_run, training_run
        from training.train import train

        full = load_lending_club()
        data = (
            full
            if through_period is None
            else select_period(full, through_period, periods, period_seed)
        )
        margins = Margins(auc=auc_margin, brier=brier_margin)
        with console.status(f"training on {len(data):,} loans"):
            matrix = application_matrix(data)
            results = [train(data, kind=k, seed=seed, matrix=matrix) for k in kinds]
        for result in results:
            report = export_model(result, cfg.models_dir, cfg.bands, make_current=False)
            test = result.champion.test
            console.print(
                f"{result.kind}: trained {report.version} on {result.data['rows']:,} loans "
                f"(data {result.data['sha256'][:12]}); held-out AUC {test['auc']:.4f}, Brier "
                f"{test['brier']:.4f}",
                soft_wrap=True,
                highlight=False,
            )
            stage = CHALLENGER
            if auto_promote:
                try:
                    done = promote(cfg.models_dir, report.version, margins=margins, data=full)
                except PromotionRefused as refused:
                    console.print(f"not promoted: {refused}", soft_wrap=True, highlight=False)
                else:
                    stage = CHAMPION
                    retired = f"; {done.replaced} retired" if done.replaced else " (the first)"
                    console.print(
                        f"{report.version} is now the {result.kind} champion{retired}",
                        soft_wrap=True,
                        highlight=False,
                    )
            else:
                verdict = register_challenger(
                    cfg.models_dir, report.version, margins=margins, data=full
                )
                if verdict is None:
                    outcome = "no champion to compare with"
                else:
                    a, b = verdict.challenger, verdict.champion
                    outcome = (
                        f"{'passes' if verdict.passed else 'fails'} the gate: AUC {a['auc']:.4f} "
                        f"vs {b['auc']:.4f}, Brier {a['brier']:.4f} vs {b['brier']:.4f} on "
                        f"{verdict.rows:,} rows"
                    )
                console.print(
                    f"{report.version} registered as a challenger ({outcome}); "
                    f"`riskctl models promote {report.version}` to use it",
                    soft_wrap=True,
                    highlight=False,
                )
            record_run(cfg.models_dir, training_run(result, report.version, stage))


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain_command)
