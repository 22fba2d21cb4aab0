"""A lean hand-written pipeline to hold ``riskctl run`` against: applications read in chunks,
decoded by msgspec, featurized by the project's own feature function, scored with reasons in
one ONNX call per chunk and inserted into chDB once per chunk. No Bytewax, no dead letters,
no de-duplication, no loan state: what the work costs without the product around it.

    python bench/lean_pipeline.py EVENTS.jsonl MODELS_DIR [--chunk 40000]

Prints events/s of the pipeline alone (after imports and model load) and of the whole
process, for the same file ``riskctl run --input`` reads.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()

import chdb.session  # noqa: E402 - imports count in the whole-process time
import msgspec  # noqa: E402
import pyarrow as pa  # noqa: E402

from flows.events import LoanApplication  # noqa: E402
from flows.features import FEATURE_NAMES, feature_matrix  # noqa: E402
from flows.model import load_model  # noqa: E402

_TABLE = "CREATE TABLE scores (event_id String, loan_id String, pd Float64, {features}, "
_TABLE += "reason_codes Array(String)) ENGINE = MergeTree ORDER BY event_id"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("--chunk", type=int, default=40_000)
    args = parser.parse_args()
    model = load_model(args.models_dir)
    decoder = msgspec.json.Decoder(LoanApplication)
    with tempfile.TemporaryDirectory(prefix="lean-") as scratch:
        session = chdb.session.Session(scratch)
        session.query("CREATE DATABASE IF NOT EXISTS lean")
        session.query("USE lean")
        features = ", ".join(f"{name} Float64" for name in FEATURE_NAMES)
        session.query(_TABLE.format(features=features))
        began = time.perf_counter()
        count = 0
        with args.events.open("rb") as file:
            while True:
                lines = [line for _, line in zip(range(args.chunk), file, strict=False)]
                if not lines:
                    break
                apps = decoder.decode_lines(b"".join(lines))
                matrix = feature_matrix(apps)
                pd, codes, _texts = model.explain(matrix, 3)
                columns = {
                    "event_id": pa.array([a.event_id for a in apps], pa.string()),
                    "loan_id": pa.array([a.loan_id for a in apps], pa.string()),
                    "pd": pa.array(pd, pa.float64()),
                }
                for j, name in enumerate(FEATURE_NAMES):
                    columns[name] = pa.array(matrix[:, j], pa.float64())
                columns["reason_codes"] = codes
                data = pa.table(columns)  # noqa: F841 - read by chDB's Python() table function
                session.query("INSERT INTO scores SELECT * FROM Python(data)")
                count += len(apps)
        ended = time.perf_counter()
        stored = int(session.query("SELECT count() FROM scores", "CSV").bytes())
        session.close()
    if stored != count:
        raise SystemExit(f"error: stored {stored} rows of {count}")
    print(
        f"lean pipeline: {count:,} events, {count / (ended - began):,.0f} events/s "
        f"({ended - began:.2f} s); whole process {count / (ended - STARTED):,.0f} events/s "
        f"({ended - STARTED:.2f} s)"
    )


if __name__ == "__main__":
    main()
