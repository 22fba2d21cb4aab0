"""Turn a micro-batch of raw payloads into rows for ClickHouse: validate, featurize, score with
one ONNX call per batch, band, explain. Pure apart from the model; no Bytewax, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter
from typing import cast

import numpy as np
import pyarrow as pa

from flows.batches import (
    TS_MS,
    ApplicationBatch,
    RawBatch,
    constant,
    constant_time,
    dead_letter_table,
    utc_ms,
    utf8_strings,
)
from flows.clock import utc_now
from flows.events import LoanApplication, LoanRepayment
from flows.features import (
    FEATURE_NAMES,
    Columns,
    application_columns,
    columns_feature_matrix,
    feature_matrix,
)
from flows.loan.book import LoanEvent, Opened, Repaid
from flows.model import ChampionWatch, ScoringModel
from flows.model_cards import ModelError
from flows.risk import risk_columns
from flows.settings import Settings
from flows.shadow import ChallengerWatch, shadow_table
from flows.validation import DeadLetter, decode_event, decode_events

_UNPRICED = "int_rate is required to follow a loan's repayments (a behavioural model is in use)"

_EVENT_ID, _LOAN_ID = attrgetter("event_id"), attrgetter("loan_id")
_EVENT_TYPE, _EVENT_TIME = attrgetter("event_type"), attrgetter("event_time")


def _unpriced(event: LoanApplication | LoanRepayment | DeadLetter) -> bool:
    """An application without the rate its installment schedule, which repayments follow,
    needs."""
    return type(event) is LoanApplication and event.int_rate is None


# A batch judged event by event: valid events, their origins, payloads and positions in the
# batch, and the dead letters of the others.
_Judged = tuple[
    list[LoanApplication | LoanRepayment], list[str], list[bytes], list[int], list[DeadLetter]
]

# Callers score single applications and small batches through the same batch evaluation.
__all__ = ["BatchScorer", "feature_matrix", "raw_table"]


class BatchScorer:
    """Callable the dataflow maps over raw batches; holds the model and the settings it needs.

    Applications are scored here at origination; repayments pass on to the per-loan state step
    as :class:`LoanEvent` values (with each application's PD), in arrival order.
    """

    def __init__(
        self,
        model: ScoringModel,
        settings: Settings,
        *,
        track_loans: bool = False,
        watch: ChampionWatch | None = None,
        shadow: ScoringModel | None = None,
        shadow_watch: ChallengerWatch | None = None,
    ) -> None:
        self.model = model
        # Shadow scoring: this challenger scores the same features; its rows go apart.
        self._shadow = shadow
        # Hot reload of the challenger, looked up once per batch like the champion.
        self._shadow_watch = shadow_watch
        # Hot reload: the champion is looked up once per batch, and the batch scored by it.
        self._watch = watch
        # With a live model every event feeds the per-loan state; without one a repayment
        # cannot be scored, so it stops the flow (its offset uncommitted) rather than vanish.
        self._track_loans = track_loans
        self._bands = settings.bands
        self._lgd = settings.lgd
        self._max_bytes = settings.max_payload_bytes
        self._reasons = settings.reason_codes

    def __call__(self, batch: RawBatch) -> ApplicationBatch:
        # The usual batch, valid events only, is decoded and validated in one call per event
        # type; any other is judged payload by payload, so that each dead letter keeps its
        # exact reason.
        events = decode_events(batch.payloads, self._max_bytes)
        if events is not None and self._track_loans and any(map(_unpriced, events)):
            events = None
        if events is None:
            valid, origins, payloads, kept, dead = self._validate(batch)
        else:
            valid, origins, payloads = events, batch.origins, batch.payloads
            kept, dead = None, list(batch.errors)
        stamps = None
        if batch.source_ms is not None:
            stamps = np.asarray(batch.source_ms, dtype=np.int64)
            if kept is not None:
                stamps = stamps[np.asarray(kept, dtype=np.int64)]
        only_apps = all(type(e) is LoanApplication for e in valid)
        raw = raw_table(valid, origins, payloads, batch.received_at, stamps, only_apps)
        if only_apps:
            applications, raw_apps = valid, raw
        else:
            is_app = [type(e) is LoanApplication for e in valid]
            applications = list(compress(valid, is_app))
            raw_apps = raw.filter(pa.array(is_app))
        columns = application_columns(applications)  # type: ignore[arg-type]
        matrix = columns_feature_matrix(columns)
        model = self.model if self._watch is None else self._watch.current()
        pd, codes, texts = model.explain(matrix, self._reasons)
        scored = self._scored_table(columns, raw_apps, matrix, pd, codes, texts, model)
        shadow = None
        challenger = self._shadow if self._shadow_watch is None else self._shadow_watch.current()
        if challenger is not None:
            shadow = shadow_table(scored, matrix, challenger, self._bands)
        loan_events: list[LoanEvent] = []
        if self._track_loans:
            event_ms = raw.column("event_time").cast(pa.int64()).to_pylist()
            loan_events = self._loan_events(
                valid, origins, pd, batch.received_at, stamps, event_ms, model.version
            )
        elif not only_apps:
            raise ModelError(
                "repayment events need a behavioural model; run `riskctl train-behaviour`"
            )
        return ApplicationBatch(
            raw=raw.drop_columns(["source_time"]),
            scored=scored,
            dead=dead_letter_table(dead, batch.received_at),
            source=batch.source,
            positions=batch.positions,
            loan_events=loan_events,
            shadow=shadow,
        )

    def _validate(self, batch: RawBatch) -> _Judged:
        """The valid events of a batch, judged one by one, with where each came from, and the
        dead letters of the others."""
        valid: list[LoanApplication | LoanRepayment] = []
        origins: list[str] = []
        payloads: list[bytes] = []
        kept: list[int] = []
        dead: list[DeadLetter] = list(batch.errors)
        max_bytes = self._max_bytes
        for i, (origin, payload) in enumerate(zip(batch.origins, batch.payloads, strict=True)):
            result = decode_event(payload, origin, max_bytes)
            if self._track_loans and _unpriced(result):
                result = DeadLetter(origin, "missing_field", _UNPRICED, payload)
            if type(result) is DeadLetter:
                dead.append(result)
            else:
                valid.append(result)
                origins.append(origin)
                payloads.append(payload)
                kept.append(i)
        return valid, origins, payloads, kept, dead

    def _scored_table(
        self,
        columns: Columns,
        raw: pa.Table,
        matrix: np.ndarray,
        pd: np.ndarray,
        codes: pa.ListArray,
        texts: pa.ListArray,
        model: ScoringModel,
    ) -> pa.Table:
        n = len(matrix)
        exposure = np.array(columns["funded_amnt"], dtype=np.float64)
        # An application the lender has not priced yet has no grade: stored as "". (Columns
        # types its values as objects; a sub_grade is a str or None.)
        sub_grade = [g or "" for g in cast("tuple[str | None, ...]", columns["sub_grade"])]
        table: dict[str, pa.Array] = {
            "event_id": raw.column("event_id"),
            "loan_id": raw.column("loan_id"),
            "borrower_id": pa.array(columns["borrower_id"], pa.string()),
            "event_type": constant("loan_application", n),
            "event_time": raw.column("event_time"),
            "received_at": raw.column("received_at"),
            "source_time": raw.column("source_time"),
            "processed_at": constant_time(utc_now(), n),
            "model_version": constant(model.version, n),
            "model_kind": constant(model.kind, n),
            # the applicant model scores a lifetime PD; the store adds its 12-month one
            **risk_columns(pd, exposure, self._bands, self._lgd, "lifetime"),
            "grade": pa.array([g[:1] for g in sub_grade], pa.string()),
            "sub_grade": pa.array(sub_grade, pa.string()),
            "addr_state": pa.array(columns["addr_state"], pa.string()),
            "term_months": pa.array(columns["term_months"], pa.uint8()),
            # NaN, not 0, for an unpriced application: a rate of 0 would be a made-up price
            "int_rate": pa.array(np.array(columns["int_rate"], np.float64), pa.float64()),
            "annual_inc": pa.array(columns["annual_inc"], pa.float64()),
            "reason_codes": codes,
            "reason_texts": texts,
        }
        for j, name in enumerate(FEATURE_NAMES):
            table[name] = pa.array(matrix[:, j], pa.float64())
        return pa.table(table)

    def _loan_events(
        self,
        valid: list[LoanApplication | LoanRepayment],
        origins: list[str],
        pd: np.ndarray,
        received_at: datetime,
        stamps: np.ndarray | None,
        event_ms: list[int],
        version: str,
    ) -> list[LoanEvent]:
        events: list[LoanEvent] = []
        add = events.append
        scores = iter(pd.tolist())
        received_us = int(received_at.timestamp() * 1_000_000)
        if stamps is None:
            source_ms: Iterable[int] = repeat(received_us // 1000, len(valid))
        else:
            source_ms = stamps.tolist()
        # zipped rather than indexed: this runs once per event
        for event, origin, ms, at in zip(valid, origins, source_ms, event_ms, strict=True):
            if type(event) is LoanApplication:
                add(Opened(event, next(scores), version, origin))
            else:
                add(Repaid(event, origin, received_us, ms, at))
        return events


def raw_table(
    valid: list[LoanApplication | LoanRepayment],
    origins: list[str],
    payloads: list[bytes],
    received_at: datetime,
    stamps: np.ndarray | None,
    only_apps: bool,
) -> pa.Table:
    """raw_events rows for the valid events, plus their source_time (dropped before storing)."""
    received = constant_time(received_at, len(valid))
    if only_apps:
        event_type = constant("loan_application", len(valid))
    else:
        event_type = pa.array(list(map(_EVENT_TYPE, valid)), pa.string())
    return pa.table(
        {
            "event_id": pa.array(list(map(_EVENT_ID, valid)), pa.string()),
            "loan_id": pa.array(list(map(_LOAN_ID, valid)), pa.string()),
            "event_type": event_type,
            "event_time": utc_ms(list(map(_EVENT_TIME, valid))),
            "received_at": received,
            "origin": pa.array(origins, pa.string()),
            # Valid events decoded as UTF-8 JSON already: their bytes are the column's data.
            "payload": utf8_strings(payloads),
            "source_time": received.cast(TS_MS, safe=False)
            if stamps is None
            else pa.array(stamps, TS_MS),
        }
    )
