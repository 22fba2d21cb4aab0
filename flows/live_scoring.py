"""Live PD: each observed repayment scored by the behavioural model, one ONNX call per batch.

Expected loss moves with the loan: live PD x outstanding balance (the exposure at default)
x LGD.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import pyarrow as pa

from flows.batches import (
    NO_ROWS,
    TS_MS,
    TS_US,
    RepaymentBatch,
    constant,
    constant_time,
    dead_letter_table,
    utc_ms,
)
from flows.clock import utc_now
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES
from flows.loan.book import BookOutcome
from flows.loan.labels import BUCKET_STARTS, DPD_BUCKETS
from flows.model import ChampionWatch, ScoringModel
from flows.model_cards import ModelError
from flows.risk import risk_columns
from flows.settings import Settings

_DPD = BEHAVIOUR_FEATURE_NAMES.index("days_past_due")
_BALANCE = BEHAVIOUR_FEATURE_NAMES.index("outstanding_balance")
# dpd_bucket() vectorized: the lower bound of every bucket after "current".
_BUCKET_EDGES = np.array(BUCKET_STARTS[1:], dtype=np.float64)
_BUCKET_NAMES = np.array(DPD_BUCKETS, dtype=object)


class LiveScorer:
    def __init__(
        self,
        model: ScoringModel | None,
        settings: Settings,
        *,
        watch: ChampionWatch | None = None,
    ) -> None:
        self.model = model
        # Hot reload: the behavioural champion is looked up once per call, which scores whole.
        self._watch = watch
        self._bands = settings.bands
        self._lgd = settings.lgd
        self._reasons = settings.reason_codes

    def __call__(self, work: list[BookOutcome]) -> list[RepaymentBatch]:
        """Score the observations of several shards at once."""
        observed = [o for outcome in work for o in outcome.observed]
        pending_change = sum(outcome.pending_change for outcome in work)
        repeats = sum(outcome.repeats for outcome in work)
        dead = [d for outcome in work for d in outcome.dead]
        dead_table = dead_letter_table(dead, utc_now()) if dead else NO_ROWS
        if not observed:
            return [RepaymentBatch(NO_ROWS, dead_table, pending_change, repeats)]
        model = self.model if self._watch is None else self._watch.current()
        if model is None:
            # Failing here keeps the events: the flow stops before their offsets are committed.
            raise ModelError(
                "repayment events need a behavioural model; run `riskctl train-behaviour`"
            )
        n = len(observed)
        width = len(BEHAVIOUR_FEATURE_NAMES)
        matrix = np.fromiter(
            chain.from_iterable([o.features for o in observed]), np.float64, n * width
        ).reshape(n, width)
        pd = model.predict_pd(matrix)
        # Columns come from the feature matrix where they can: one vector op, not n lookups.
        balance = matrix[:, _BALANCE]
        repaid = [o.repaid for o in observed]
        events = [r.event for r in repaid]
        segments = [o.segment for o in observed]
        received_us = np.fromiter([r.received_us for r in repaid], np.int64, n)
        source_ms = np.fromiter([r.source_ms for r in repaid], np.int64, n)
        buckets = np.searchsorted(_BUCKET_EDGES, matrix[:, _DPD], side="right")
        states = [o.state for o in observed]
        columns: dict[str, pa.Array] = {
            "event_id": pa.array([e.event_id for e in events], pa.string()),
            "loan_id": pa.array([e.loan_id for e in events], pa.string()),
            "event_time": utc_ms([e.event_time for e in events]),
            "received_at": pa.array(received_us, TS_US),
            "source_time": pa.array(source_ms, TS_MS),
            "processed_at": constant_time(utc_now(), n),
            "installment_number": pa.array([e.installment_number for e in events], pa.uint16()),
            "amount_due": pa.array([e.amount_due for e in events], pa.float64()),
            "amount_paid": pa.array([e.amount_paid for e in events], pa.float64()),
            "dpd_bucket": pa.array(_BUCKET_NAMES[buckets], pa.string()),
            "model_version": constant(model.version, n),
            "origination_model_version": pa.array(
                [s.origination_version for s in segments], pa.string()
            ),
            "origination_pd_lifetime": pa.array([s.origination_pd for s in states], pa.float64()),
            **risk_columns(pd, balance, self._bands, self._lgd, "12m"),
            "grade": pa.array([s.grade for s in segments], pa.string()),
            "sub_grade": pa.array([s.sub_grade for s in segments], pa.string()),
            "addr_state": pa.array([s.addr_state for s in segments], pa.string()),
            "reason_codes": model.reason_codes(matrix, self._reasons),
            # the loan's schedule, from which the views compute month-end positions
            "origination_date": pa.array([s.origination_date for s in states], pa.date32()),
            "term_months": pa.array([s.term_months for s in states], pa.uint16()),
            "installment": pa.array([s.installment for s in states], pa.float64()),
            "funded_amnt": pa.array([s.funded_amnt for s in states], pa.float64()),
        }
        for j, name in enumerate(BEHAVIOUR_FEATURE_NAMES):
            columns[name] = pa.array(matrix[:, j], pa.float64())
        return [RepaymentBatch(pa.table(columns), dead_table, pending_change, repeats)]
