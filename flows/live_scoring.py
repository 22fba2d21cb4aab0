"""Live PD: each observed repayment scored by the behavioural model, one ONNX call per batch.

Expected loss moves with the loan: live PD x outstanding balance (the exposure at default)
x LGD.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter

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
    names_at,
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
_BUCKET_NAMES = pa.array(DPD_BUCKETS, pa.string())
_FEATURES = attrgetter("features")
_EVENT_OF = attrgetter("event")


def _getters(*names: str) -> tuple[attrgetter[object], ...]:
    return tuple(map(attrgetter, names))


_PARTS = _getters("repaid", "state", "segment")
_STAMPS = _getters("received_us", "source_ms")
_EVENT = _getters(
    "event_id", "loan_id", "event_time", "installment_number", "amount_due", "amount_paid"
)
_STATE = _getters("origination_pd", "origination_date", "term_months", "installment", "funded_amnt")
_SEGMENT = _getters("grade", "sub_grade", "addr_state", "origination_version")


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
        restored = sum(outcome.restored for outcome in work)
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
            chain.from_iterable(map(_FEATURES, observed)), np.float64, n * width
        ).reshape(n, width)
        # one model run gives the PD and the reasons
        pd, codes, _texts = model.explain(matrix, self._reasons)
        # Columns come from the feature matrix where they can: one vector op, not n lookups.
        # The rest are read one attribute at a time: a tuple per row would be a container the
        # garbage collector counts, and the collections it triggers scan the whole loan book.
        balance = matrix[:, _BALANCE]
        repaid, states, segments = (list(map(get, observed)) for get in _PARTS)
        events = list(map(_EVENT_OF, repaid))
        event_id, loan_id, event_time, installment, due, paid = (
            list(map(get, events)) for get in _EVENT
        )
        pd0, origination, term, payment, funded = (list(map(get, states)) for get in _STATE)
        grade, sub_grade, addr_state, origination_version = (
            list(map(get, segments)) for get in _SEGMENT
        )
        received_us, source_ms = (np.fromiter(map(get, repaid), np.int64, n) for get in _STAMPS)
        buckets = np.searchsorted(_BUCKET_EDGES, matrix[:, _DPD], side="right")
        columns: dict[str, pa.Array] = {
            "event_id": pa.array(event_id, pa.string()),
            "loan_id": pa.array(loan_id, pa.string()),
            "event_time": utc_ms(event_time),
            "received_at": pa.array(received_us, TS_US),
            "source_time": pa.array(source_ms, TS_MS),
            "processed_at": constant_time(utc_now(), n),
            "installment_number": pa.array(installment, pa.uint16()),
            "amount_due": pa.array(due, pa.float64()),
            "amount_paid": pa.array(paid, pa.float64()),
            "dpd_bucket": names_at(_BUCKET_NAMES, buckets),
            "model_version": constant(model.version, n),
            "origination_model_version": pa.array(origination_version, pa.string()),
            "origination_pd_lifetime": pa.array(pd0, pa.float64()),
            **risk_columns(pd, balance, self._bands, self._lgd, "12m"),
            "grade": pa.array(grade, pa.string()),
            "sub_grade": pa.array(sub_grade, pa.string()),
            "addr_state": pa.array(addr_state, pa.string()),
            "reason_codes": codes,
            # the loan's schedule, from which the views compute month-end positions
            "origination_date": pa.array(origination, pa.date32()),
            "term_months": pa.array(term, pa.uint16()),
            "installment": pa.array(payment, pa.float64()),
            "funded_amnt": pa.array(funded, pa.float64()),
        }
        for j, name in enumerate(BEHAVIOUR_FEATURE_NAMES):
            columns[name] = pa.array(matrix[:, j], pa.float64())
        batch = RepaymentBatch(pa.table(columns), dead_table, pending_change, repeats, restored)
        return [batch]
