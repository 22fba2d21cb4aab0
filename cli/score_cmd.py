"""``riskctl score``: one loan's PD, band and reason codes from the current model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
import typer

from cli.common import HomeOption, UsageError, console, settings, user_errors
from cli.number_format import percent
from cli.sql_results import Result
from cli.tables import FormatOption, OutputFormat, to_csv
from flows.model import load_model
from flows.scoring import band_names, feature_matrix
from flows.validation import DeadLetter, decode_application

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
    try:
        document = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return payload
    if not isinstance(document, dict):
        return payload
    filled = {**_ENVELOPE_DEFAULTS, "event_time": datetime.now(UTC).isoformat(), **document}
    return msgspec.json.encode(filled)


def score(
    json_text: Annotated[
        str | None, typer.Option("--json", help="The loan application as a JSON object.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A file holding the JSON object.")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model", help="Model version (default: current).")
    ] = None,
    output: FormatOption = OutputFormat.table,
    home: HomeOption = None,
) -> None:
    """Score one loan application: PD, risk band, reason codes and the model version."""
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
        result = decode_application(with_envelope(payload), "cli", cfg.max_payload_bytes)
        if isinstance(result, DeadLetter):
            raise UsageError(f"invalid application ({result.reason}): {result.detail}")
        model = load_model(cfg.models_dir, model_version)
        matrix = feature_matrix([result])
        pd = float(model.predict_pd(matrix)[0])
        band = band_names(np.array([pd]), cfg.bands)[0]
        reasons = model.reason_codes(matrix, cfg.reason_codes).to_pylist()[0]
        answer = {
            "loan_id": result.loan_id,
            "pd": round(pd, 6),
            "band": band,
            "reason_codes": reasons,
            "model_version": model.version,
        }
        if output is OutputFormat.json:
            typer.echo(json.dumps(answer))
            return
        if output is OutputFormat.csv:
            typer.echo(to_csv(Result.from_records([answer])), nl=False)
            return
        console.print(f"PD            {percent(pd)}")
        console.print(f"band          {band}")
        console.print(f"reason codes  {', '.join(reasons) or '(none above the training centre)'}")
        console.print(f"model         {model.version}")


def register(app: typer.Typer) -> None:
    app.command()(score)
