"""``riskctl models``: the registry's versions and stages; promote, roll back, show a card."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cli.common import HomeOption, UsageError, console, settings, user_errors
from cli.sql_results import Result
from cli.tables import Column, FormatOption, OutputFormat, WideOption, emit
from flows.model_registry import KINDS

if TYPE_CHECKING:
    from flows.model_registry import ModelEntry

VersionArgument = Annotated[str, typer.Argument(help="The model version.", show_default=False)]
AucMarginOption = Annotated[
    float,
    typer.Option(
        "--auc-margin",
        help="The challenger's AUC must reach the champion's plus this (negative: a tolerated "
        "drop).",
    ),
]
BrierMarginOption = Annotated[
    float,
    typer.Option(
        "--brier-margin",
        help="The challenger's Brier score may exceed the champion's by at most this.",
    ),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Promote even if the gate refuses (needs --reason).")
]
ReasonOption = Annotated[
    str | None,
    typer.Option("--reason", help="Why; recorded in the registry log.", show_default=False),
]
RegistryKindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help=f"Model kind: {', '.join(KINDS)} (default: the kind RISKCTL_MODEL_KIND scores).",
        show_default=False,
    ),
]


def _kind(kind: str | None, default: str) -> str:
    chosen = kind or default
    if chosen not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got {chosen!r}")
    return chosen


def _row(entry: ModelEntry) -> dict[str, Any]:
    return {
        "version": entry.version,
        "kind": entry.kind,
        "stage": entry.stage,
        "created_at": entry.created_at,
        "model_type": entry.model_type,
        "test_auc": entry.test_auc,
        "test_brier": entry.test_brier,
        "data_sha256": entry.data_sha256,
    }


def list_command(
    home: HomeOption = None, output: FormatOption = OutputFormat.table, wide: WideOption = False
) -> None:
    """List every model version of every kind with its stage, oldest first."""
    from flows.model_registry import entries

    with user_errors():
        cfg = settings(home=home)
        found = entries(cfg.models_dir)
        if not found and output is OutputFormat.table:
            console.print(f"no models in {cfg.models_dir}; run `riskctl train`", soft_wrap=True)
            return
        columns = {
            "created_at": Column("created", wide_only=True),
            "model_type": Column("type", wide_only=True),
            "test_auc": Column("AUC"),
            "test_brier": Column("Brier"),
            "data_sha256": Column("data", wide_only=True),
        }
        result = Result.from_records([_row(e) for e in found])
        emit(console, result, output, f"Models in {cfg.models_dir}", columns, wide)


def _section(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """The object under ``key``, or an empty one where the card has none."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _card_table(entry: ModelEntry) -> Table:
    card = entry.card
    data = _section(card, "data")
    test = _section(_section(card, "metrics"), "test")
    table = Table(title=f"Model {entry.version}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("kind", entry.kind),
        ("stage", entry.stage),
        ("type", entry.model_type),
        ("created", entry.created_at),
        ("params", json.dumps(card.get("params"))),
        ("data", data.get("source")),
        ("data SHA-256", data.get("sha256")),
        ("selection", json.dumps(data.get("selection"))),
        ("rows", data.get("rows", data.get("observations"))),
        ("split seed", data.get("seed")),
        *((f"test {k}", test.get(k)) for k in ("auc", "ks", "brier", "mean_pd", "bad_rate")),
        ("card", str(entry.path / "card.md")),
    ]
    for name, value in rows:
        if value is not None:
            table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def _history_table(entry: ModelEntry, changes: list[Any]) -> Table:
    table = Table(title=f"Stage changes of {entry.version}")
    for name in ("at", "by", "action", "stage", "reason"):
        table.add_column(name, overflow="fold")
    for c in changes:
        table.add_row(c.at, c.by, c.action, f"{c.previous or '-'} -> {c.stage}", c.reason)
    return table


def show_command(
    version: VersionArgument, home: HomeOption = None, output: FormatOption = OutputFormat.table
) -> None:
    """Show a version's model card, stage and stage changes."""
    from flows.model_registry import find_entry, history

    with user_errors():
        cfg = settings(home=home)
        entry = find_entry(cfg.models_dir, version)
        changes = history(cfg.models_dir, version)
        if output is OutputFormat.table:
            console.print(_card_table(entry))
            if changes:
                console.print(_history_table(entry, changes))
            return
        if output is OutputFormat.csv:
            raise UsageError("models show writes a table or JSON, not CSV")
        document = {
            "stage": entry.stage,
            "history": [c.as_record() for c in changes],
            "card": entry.card,
        }
        typer.echo(json.dumps(_finite(document), indent=2, allow_nan=False))


def _finite(value: Any) -> Any:
    """Valid JSON for other programs: the card's reference bins have infinite outer edges,
    written as the strings ``"Infinity"`` and ``"-Infinity"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "Infinity" if value > 0 else "-Infinity" if value < 0 else "NaN"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def promote_command(
    version: VersionArgument,
    home: HomeOption = None,
    force: ForceOption = False,
    reason: ReasonOption = None,
    auc_margin: AucMarginOption = 0.0,
    brier_margin: BrierMarginOption = 0.0,
) -> None:
    """Make a version its kind's champion if it is no worse than the champion on the same data."""
    with user_errors():
        cfg = settings(home=home)
        # Imported here: the gate needs scikit-learn and the data, listing needs neither.
        from training.gate import Margins
        from training.lifecycle import promote

        with console.status("evaluating against the champion"):
            done = promote(
                cfg.models_dir,
                version,
                margins=Margins(auc=auc_margin, brier=brier_margin),
                force=force,
                reason=reason,
            )
        console.print(_promotion_line(done), soft_wrap=True)


def _promotion_line(done: Any) -> str:
    head = f"{done.version} is now the {done.kind} champion"
    if done.replaced is None:
        return f"{head} (the first)"
    verdict = done.verdict
    how = "forced past the gate" if done.forced else "passed the gate"
    if verdict is None:
        return f"{head}, {how} (the gate could not compare them); {done.replaced} retired"
    a, b = verdict.challenger, verdict.champion
    return (
        f"{head}, {how}: AUC {a['auc']:.4f} vs {b['auc']:.4f}, Brier {a['brier']:.4f} vs "
        f"{b['brier']:.4f} on {verdict.rows} rows ({verdict.bads} defaults); "
        f"{done.replaced} retired"
    )


def rollback_command(
    home: HomeOption = None,
    kind: RegistryKindOption = None,
    reason: ReasonOption = None,
) -> None:
    """Retire the kind's champion and bring back the champion before it."""
    with user_errors():
        cfg = settings(home=home)
        chosen = _kind(kind, cfg.model_kind)
        from training.registry import rollback

        retired, restored = rollback(cfg.models_dir, chosen, reason or "rolled back")
        console.print(
            f"{restored} is the {chosen} champion again; {retired} retired", soft_wrap=True
        )


def runs_command(
    home: HomeOption = None,
    kind: RegistryKindOption = None,
    output: FormatOption = OutputFormat.table,
    wide: WideOption = False,
) -> None:
    """List the recorded training runs, oldest first: parameters, metrics, data, version."""
    with user_errors():
        cfg = settings(home=home)
        # Imported here: reading the history needs neither scikit-learn nor ONNX.
        from training.runs import read_runs

        chosen = None if kind is None else _kind(kind, kind)
        runs = [r for r in read_runs(cfg.models_dir) if chosen in (None, r.get("kind"))]
        if not runs and output is OutputFormat.table:
            console.print(f"no training runs recorded in {cfg.models_dir}", soft_wrap=True)
            return
        if output is OutputFormat.json:
            typer.echo(json.dumps(runs, allow_nan=False))
            return
        rows = [
            {
                "run": r.get("run"),
                "started_at": r.get("started_at"),
                "kind": r.get("kind"),
                "duration_s": r.get("duration_s"),
                "test_auc": r.get("metrics", {}).get("test_auc"),
                "test_brier": r.get("metrics", {}).get("test_brier"),
                "data_sha256": str(r.get("data", {}).get("sha256", ""))[:12],
                "rows": r.get("data", {}).get("rows"),
                "params": json.dumps(r.get("params", {}).get("chosen", r.get("params"))),
                "version": r.get("version"),
                "stage": r.get("stage"),
            }
            for r in runs
        ]
        columns = {
            "started_at": Column("started", wide_only=True),
            "duration_s": Column("s"),
            "test_auc": Column("AUC"),
            "test_brier": Column("Brier"),
            "data_sha256": Column("data", wide_only=True),
            "rows": Column("rows", wide_only=True),
            "params": Column("params", wide_only=True),
        }
        emit(console, Result.from_records(rows), output, "Training runs", columns, wide)


def register(app: typer.Typer) -> None:
    models = typer.Typer(
        help="The model registry: versions and stages; promote, roll back, show a card.",
        no_args_is_help=True,
    )
    models.command("list")(list_command)
    models.command("show")(show_command)
    models.command("promote")(promote_command)
    models.command("rollback")(rollback_command)
    models.command("runs")(runs_command)
    app.add_typer(models, name="models")
