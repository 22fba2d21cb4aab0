"""``riskctl score``: one loan's PD, band and reason codes from the current model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import HomeOption, UsageError, console, settings, user_errors
from cli.number_format import percent
from cli.sql_results import Result
from cli.tables import FormatOption, OutputFormat, to_csv
from flows.settings import MODEL_KINDS
from flows.times import iso_utc

# Fields that identify an event in a stream; a one-off score does not need them.
_ENVELOPE_DEFAULTS = {
    "schema_version": 1,
    "event_type": "loan_application",
    "event_id": "cli-score",
    "loan_id": "cli-score",
    "borrower_id": "cli-score",
}


def with_envelope(payload: bytes) -> bytes:
    """Fill in envelope fields the caller left out; anything unparseable passes through as is."""
    import msgspec

    try:
        document = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return payload
    if not isinstance(document, dict):
        return payload
    filled = {**_ENVELOPE_DEFAULTS, "event_time": iso_utc(datetime.now(UTC)), **document}
    return msgspec.json.encode(filled)


def score(
    json_text: Annotated[
        str | None, typer.Option("--json", help="The loan application as a JSON object.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A file holding the JSON object.")
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option("--model", help="Model version (default: the current one of the kind)."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="applicant or priced (env: RISKCTL_MODEL_KIND; default applicant).",
            show_default=False,
        ),
    ] = None,
    output: FormatOption = OutputFormat.table,
    home: HomeOption = None,
) -> None:
    """Score one loan application: PD, risk band, reasons and the model that scored it.

    The applicant model needs no int_rate or sub_grade; a field left out scores as its own
    "missing" attribute and, when that costs points, is cited as "not supplied".
    """
    import numpy as np

    from flows.model import load_model
    from flows.risk import band_names
    from flows.scoring import feature_matrix
    from flows.validation import DeadLetter, decode_application

    with user_errors():
        if (json_text is None) == (file is None):
            raise UsageError("give exactly one of --json or --file")
        if file is not None:
            if not file.is_file():
                raise UsageError(f"file not found: {file}")
            payload = file.read_bytes().strip()
        else:
            payload = (json_text or "").encode()
        cfg = settings(home)
        if kind is not None:
            if kind not in MODEL_KINDS:
                raise UsageError(f"--kind must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
            cfg = cfg.with_overrides(model_kind=kind)
        result = decode_application(with_envelope(payload), "cli", cfg.max_payload_bytes)
        if isinstance(result, DeadLetter):
            raise UsageError(f"invalid application ({result.reason}): {result.detail}")
        # An explicit version is taken as it is; otherwise the kind's current one.
        chosen_kind = None if model_version and kind is None else cfg.model_kind
        model = load_model(cfg.models_dir, model_version, kind=chosen_kind)
        matrix = feature_matrix([result])
        pds, codes, texts = model.explain(matrix, cfg.reason_codes)
        pd = float(pds[0])
        band = band_names(np.array([pd]), cfg.bands)[0]
        reasons = codes.to_pylist()[0]
        answer = {
            "loan_id": result.loan_id,
            "pd_lifetime": round(pd, 6),
            "band": band,
            "reason_codes": reasons,
            "reasons": texts.to_pylist()[0],
            "model_version": model.version,
            "model_kind": model.kind,
        }
        if output is OutputFormat.json:
            typer.echo(json.dumps(answer))
            return
        if output is OutputFormat.csv:
            typer.echo(to_csv(Result.from_records([answer])), nl=False)
            return
        console.print(f"PD (lifetime) {percent(pd)}")
        console.print(f"band          {band}")
        if not reasons:
            console.print("reasons       (none: every characteristic at its best attribute)")
        for i, (code, text) in enumerate(zip(reasons, answer["reasons"], strict=True)):
            console.print(f"{'reasons' if i == 0 else '':<14}{text} [{code}]", markup=False)
        console.print(f"model         {model.version} ({model.kind})")


def register(app: typer.Typer) -> None:
    app.command()(score)
