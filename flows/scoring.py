"""Turn a micro-batch of raw payloads into rows for ClickHouse: validate, featurize, score with
one ONNX call per batch, band, explain. Pure apart from the model; no Bytewax, no I/O.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from flows.events import LoanApplication
from flows.features import FEATURE_NAMES, application_features
from flows.model import ScoringModel
from flows.settings import Bands, Settings
from flows.validation import DeadLetter, decode_application

_TS_MS = pa.timestamp("ms", tz="UTC")
_TS_US = pa.timestamp("us", tz="UTC")


Positions = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Payloads read together by a source, with where each came from.

    ``source_ms`` holds each payload's source timestamp (Kafka's, in ms) when the source has
    one; ``errors`` are payloads the source itself could not deliver, already dead letters.
    """

    origins: list[str]
    payloads: list[bytes]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    source: str = "file"
    source_ms: list[int] | None = None
    positions: Positions = field(default_factory=dict)
    errors: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.payloads) + len(self.errors)


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """Rows for the three core tables, plus where the source stood after this batch."""

    raw: pa.Table
    scored: pa.Table
    dead: pa.Table
    source: str = "file"
    positions: Positions = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.scored.num_rows + self.dead.num_rows


def band_names(pd: np.ndarray, bands: Bands) -> list[str]:
    """Each PD's band: the first band whose upper threshold is above it."""
    index = np.searchsorted(np.asarray(bands.thresholds), pd, side="right")
    names = np.asarray(bands.names, dtype=object)
    return names[index].tolist()


def feature_matrix(apps: list[LoanApplication]) -> np.ndarray:
    if not apps:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float64)
    return np.array([application_features(app) for app in apps], dtype=np.float64)


def dead_letter_table(dead: list[DeadLetter], received_at: datetime) -> pa.Table:
    return pa.table(
        {
            "dead_letter_id": pa.array([d.dead_letter_id for d in dead], pa.string()),
            "received_at": pa.array([received_at] * len(dead), _TS_US),
            "origin": pa.array([d.origin for d in dead], pa.string()),
            "reason": pa.array([d.reason for d in dead], pa.string()),
            "detail": pa.array([d.detail for d in dead], pa.string()),
            "payload": pa.array(
                [d.payload.decode("utf-8", errors="replace") for d in dead], pa.string()
            ),
            "payload_base64": pa.array(
                [base64.b64encode(d.payload).decode("ascii") for d in dead], pa.string()
            ),
        }
    )


def _constant_time(moment: datetime, n: int) -> pa.Array:
    micros = int(moment.timestamp() * 1_000_000)
    return pa.array(np.full(n, micros, dtype=np.int64), _TS_US)


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
    ).cast(pa.string())


class BatchScorer:
    """Callable the dataflow maps over raw batches; holds the model and the settings it needs."""

    def __init__(self, model: ScoringModel, settings: Settings) -> None:
        self.model = model
        self._bands = settings.bands
        self._lgd = settings.lgd
        self._max_bytes = settings.max_payload_bytes
        self._reasons = settings.reason_codes

    def __call__(self, batch: RawBatch) -> ScoredBatch:
        apps: list[LoanApplication] = []
        origins: list[str] = []
        payloads: list[bytes] = []
        kept: list[int] = []
        dead: list[DeadLetter] = list(batch.errors)
        max_bytes = self._max_bytes
        for i, (origin, payload) in enumerate(zip(batch.origins, batch.payloads, strict=True)):
            result = decode_application(payload, origin, max_bytes)
            if type(result) is DeadLetter:
                dead.append(result)
            else:
                apps.append(result)  # type: ignore[arg-type]
                origins.append(origin)
                payloads.append(payload)
                kept.append(i)
        n = len(apps)
        matrix = feature_matrix(apps)
        pd = self.model.predict_pd(matrix)
        processed_at = datetime.now(UTC)
        event_id = pa.array([a.event_id for a in apps], pa.string())
        loan_id = pa.array([a.loan_id for a in apps], pa.string())
        event_time = pa.array([a.event_time for a in apps], _TS_MS)
        received_at = _constant_time(batch.received_at, n)
        if batch.source_ms is None:
            source_time = received_at.cast(_TS_MS, safe=False)
        else:
            stamps = np.asarray(batch.source_ms, dtype=np.int64)[np.asarray(kept, dtype=np.int64)]
            source_time = pa.array(stamps, _TS_MS)
        event_type = _constant("loan_application", n)
        raw = pa.table(
            {
                "event_id": event_id,
                "loan_id": loan_id,
                "event_type": event_type,
                "event_time": event_time,
                "received_at": received_at,
                "origin": pa.array(origins, pa.string()),
                # Valid events decoded as UTF-8 JSON already; the cast cannot fail.
                "payload": pa.array(payloads, pa.binary()).cast(pa.string()),
            }
        )
        exposure = np.fromiter((a.funded_amnt for a in apps), dtype=np.float64, count=n)
        sub_grade = [a.sub_grade for a in apps]
        columns: dict[str, pa.Array] = {
            "event_id": event_id,
            "loan_id": loan_id,
            "borrower_id": pa.array([a.borrower_id for a in apps], pa.string()),
            "event_type": event_type,
            "event_time": event_time,
            "received_at": received_at,
            "source_time": source_time,
            "processed_at": _constant_time(processed_at, n),
            "model_version": _constant(self.model.version, n),
            "pd": pa.array(pd, pa.float64()),
            "band": pa.array(band_names(pd, self._bands), pa.string()),
            "exposure": pa.array(exposure, pa.float64()),
            "lgd": pa.array(np.full(n, self._lgd), pa.float64()),
            "expected_loss": pa.array(pd * exposure * self._lgd, pa.float64()),
            "grade": pa.array([g[0] for g in sub_grade], pa.string()),
            "sub_grade": pa.array(sub_grade, pa.string()),
            "addr_state": pa.array([a.addr_state for a in apps], pa.string()),
            "term_months": pa.array([a.term_months for a in apps], pa.uint8()),
            "int_rate": pa.array([a.int_rate for a in apps], pa.float64()),
            "annual_inc": pa.array([a.annual_inc for a in apps], pa.float64()),
            "reason_codes": self.model.reason_codes(matrix, self._reasons),
        }
        for j, name in enumerate(FEATURE_NAMES):
            columns[name] = pa.array(matrix[:, j], pa.float64())
        return ScoredBatch(
            raw=raw,
            scored=pa.table(columns),
            dead=dead_letter_table(dead, batch.received_at),
            source=batch.source,
            positions=batch.positions,
        )
