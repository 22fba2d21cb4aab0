"""Live PD: each observed repayment scored by the behavioural model, one ONNX call per batch.

Expected loss moves with the loan: live PD x outstanding balance (the exposure at default)
x LGD.
"""

from __future__ import annotations

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
)
from flows.clock import utc_now
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES
from flows.loan.book import BookOutcome, Observation
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
_PACKED = attrgetter("packed")
# FEATURE_ROW's numbers: little-endian doubles
_ROW_DTYPE = np.dtype("<f8")
_EVENT_OF = attrgetter("event")
_SEGMENT_OF = attrgetter("segment")


def _getters(*names: str) -> tuple[attrgetter[object], ...]:
    return tuple(map(attrgetter, names))


_REPAID = attrgetter("repaid")
_STAMPS = _getters("received_us", "source_ms", "event_ms")
_EVENT = _getters("event_id", "loan_id", "installment_number", "amount_due", "amount_paid")
_STATE = _getters("origination_pd", "origination_date", "term_months", "installment", "funded_amnt")
_SEGMENT = _getters("grade", "sub_grade", "addr_state", "origination_version")
_STATE_KINDS = (pa.float64(), pa.date32(), pa.uint16(), pa.float64(), pa.float64())


def _loans_of(observed: list[Observation]) -> tuple[list[Observation], pa.Array]:
    """One observation of each loan among ``observed``, and for every observation the index of
    its loan in that list.

    A loan's terms and segment do not change once it is open, so its columns are read once per
    loan, not once per row. Its book entry holds one Segment object for the loan's life, so the
    object's identity tells the loans apart; the observations keep them alive, so no two of
    them share an id meanwhile."""
    ids = np.fromiter(map(id, map(_SEGMENT_OF, observed)), np.int64, len(observed))
    _, first, row_loan = np.unique(ids, return_index=True, return_inverse=True)
    return [observed[i] for i in first.tolist()], pa.array(row_loan.astype(np.int32))


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
        matrix = np.frombuffer(b"".join(map(_PACKED, observed)), _ROW_DTYPE).reshape(n, width)
        # one model run gives the PD and the reasons
        pd, codes, _texts = model.explain(matrix, self._reasons)
        # Columns come from the feature matrix where they can: one vector op, not n lookups.
        # The rest are read one attribute at a time: a tuple per row would be a container the
        # garbage collector counts, and the collections it triggers scan the whole loan book.
        balance = matrix[:, _BALANCE]
        repaid = list(map(_REPAID, observed))
        events = list(map(_EVENT_OF, repaid))
        event_id, loan_id, installment, due, paid = (list(map(get, events)) for get in _EVENT)
        loans, row_loan = _loans_of(observed)
        states = [o.state for o in loans]
        segments = [o.segment for o in loans]
        pd0, origination, term, payment, funded = (
            pa.array(list(map(get, states)), kind).take(row_loan)
            for get, kind in zip(_STATE, _STATE_KINDS, strict=True)
        )
        grade, sub_grade, addr_state, version = (
            pa.array(list(map(get, segments)), pa.string()).take(row_loan) for get in _SEGMENT
        )
        received_us, source_ms, event_ms = (
            np.fromiter(map(get, repaid), np.int64, n) for get in _STAMPS
        )
        buckets = np.searchsorted(_BUCKET_EDGES, matrix[:, _DPD], side="right")
        columns: dict[str, pa.Array] = {
            "event_id": pa.array(event_id, pa.string()),
            "loan_id": pa.array(loan_id, pa.string()),
            "event_time": pa.array(event_ms, TS_MS),
            "received_at": pa.array(received_us, TS_US),
            "source_time": pa.array(source_ms, TS_MS),
            "processed_at": constant_time(utc_now(), n),
            "installment_number": pa.array(installment, pa.uint16()),
            "amount_due": pa.array(due, pa.float64()),
            "amount_paid": pa.array(paid, pa.float64()),
            "dpd_bucket": names_at(_BUCKET_NAMES, buckets),
            "model_version": constant(model.version, n),
            "origination_model_version": version,
            "origination_pd_lifetime": pd0,
            **risk_columns(pd, balance, self._bands, self._lgd, "12m"),
            "grade": grade,
            "sub_grade": sub_grade,
            "addr_state": addr_state,
            "reason_codes": codes,
            # the loan's schedule, from which the views compute month-end positions
            "origination_date": origination,
            "term_months": term,
            "installment": payment,
            "funded_amnt": funded,
        }
        for j, name in enumerate(BEHAVIOUR_FEATURE_NAMES):
            columns[name] = pa.array(matrix[:, j], pa.float64())
        batch = RepaymentBatch(pa.table(columns), dead_table, pending_change, repeats, restored)
        return [batch]
