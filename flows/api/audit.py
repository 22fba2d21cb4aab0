"""The audit trail of the decision service: every answer goes into the ``decisions`` table,
in batches, from a thread of its own, off the request path.

A store that is down or refuses writes costs nothing but time: rows stay in a bounded buffer
and are retried with a growing pause; a batch retried after an insert whose outcome was lost
carries the same insert token, so it is stored once. When the buffer is full the service
refuses new decisions (and /readyz says not ready) rather than answer one it cannot record.
Stopping flushes what is buffered, for as long as the caller allows.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

import pyarrow as pa

from flows.api.schema import DecisionAnswer
from flows.batches import TS_MS, TS_US
from flows.store import Store, StoreError, StoreURL, open_store
from flows.store.migrations import migrate

log = logging.getLogger("riskctl.api.audit")

_STRINGS = pa.list_(pa.string())


@dataclass(frozen=True, slots=True)
class AuditRow:
    answer: DecisionAnswer
    event_time: object  # the application's event time (an aware datetime)
    borrower_id: str
    request: bytes
    response: bytes
    idempotency_key: str
    latency_us: int


def audit_table(rows: list[AuditRow]) -> pa.Table:
    """``decisions`` rows, column by column."""
    answers = [r.answer for r in rows]
    return pa.table(
        {
            "decision_id": pa.array([a.decision_id for a in answers], pa.string()),
            "decided_at": pa.array([a.decided_at for a in answers], TS_US),
            "event_id": pa.array([a.event_id for a in answers], pa.string()),
            "loan_id": pa.array([a.loan_id for a in answers], pa.string()),
            "borrower_id": pa.array([r.borrower_id for r in rows], pa.string()),
            "event_time": pa.array([r.event_time for r in rows]).cast(TS_MS, safe=False),
            "outcome": pa.array([a.outcome for a in answers], pa.string()),
            "pd_lifetime": pa.array([a.pd_lifetime for a in answers], pa.float64()),
            "band": pa.array([a.band for a in answers], pa.string()),
            "rules_fired": pa.array([[h.name for h in a.rules_fired] for a in answers], _STRINGS),
            "reason_codes": pa.array([[x.code for x in a.reasons] for a in answers], _STRINGS),
            "reason_texts": pa.array([[x.text for x in a.reasons] for a in answers], _STRINGS),
            "model_version": pa.array([a.model_version for a in answers], pa.string()),
            "model_kind": pa.array([a.model_kind for a in answers], pa.string()),
            "policy_version": pa.array([a.policy_version for a in answers], pa.string()),
            "idempotency_key": pa.array([r.idempotency_key for r in rows], pa.string()),
            "latency_us": pa.array([r.latency_us for r in rows], pa.uint32()),
            # Valid requests are UTF-8 JSON already (validation checked); answers are ours.
            "request": pa.array(
                [r.request.decode("utf-8", "replace") for r in rows], pa.string()
            ),
            "response": pa.array([r.response.decode() for r in rows], pa.string()),
        }
    )


class AuditWriter:
    def __init__(
        self,
        store_url: StoreURL,
        *,
        capacity: int,
        batch_rows: int,
        interval_s: float,
        retry_max_s: float,
        opener: Callable[[StoreURL], Store] = open_store,
    ) -> None:
        self.capacity = capacity
        self._url = store_url
        self._batch = batch_rows
        self._interval = interval_s
        self._retry_max = retry_max_s
        self._opener = opener
        self._buffer: deque[AuditRow] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._store: Store | None = None
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self.written = 0
        self.failures = 0
        self.last_error = ""

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def ready(self) -> bool:
        """Whether the buffer still has room for more decisions."""
        return len(self._buffer) < self.capacity

    def start(self) -> None:
        self._thread.start()

    def offer(self, rows: list[AuditRow]) -> bool:
        """Buffer rows for the table; False (and nothing buffered) when they do not fit."""
        with self._lock:
            if len(self._buffer) + len(rows) > self.capacity:
                return False
            self._buffer.extend(rows)
            if len(self._buffer) >= self._batch:
                self._wake.set()
        return True

    def stop(self, timeout_s: float) -> int:
        """Flush for at most ``timeout_s``; returns how many rows could not be written."""
        self._deadline = time.monotonic() + timeout_s
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s + 1.0)
        self._close_store()
        return len(self._buffer)

    def _run(self) -> None:
        pause = self._interval
        while True:
            stopping = self._stopping.is_set()
            if self._flush():
                pause = self._interval
                if stopping:
                    return
                self._wake.wait(self._interval)
                self._wake.clear()
                continue
            left = self._deadline - time.monotonic()
            if stopping and left <= 0:
                return
            time.sleep(min(pause, left) if stopping else pause)
            pause = min(pause * 2, self._retry_max)

    def _flush(self) -> bool:
        """Write everything buffered; False when the store failed (the rows stay). The store
        is opened even with nothing to write, so that an outage shows before rows wait."""
        try:
            self._connected()
        except StoreError as exc:
            self._failed(exc)
            return False
        while self._buffer:
            with self._lock:
                batch = list(islice(self._buffer, self._batch))
            try:
                store = self._connected()
                # Same first row and size: the same token when a failed batch is retried.
                token = f"decisions_{batch[0].answer.decision_id}_{len(batch)}"
                store.insert_arrow("decisions", audit_table(batch), token=token)
            except StoreError as exc:
                self._failed(exc)
                return False
            with self._lock:
                for _ in range(len(batch)):
                    self._buffer.popleft()
            self.written += len(batch)
            self.last_error = ""
        return True

    def _failed(self, exc: StoreError) -> None:
        self.failures += 1
        if str(exc) != self.last_error:  # once per kind of failure, not once per retry
            log.warning("audit store unavailable, %d decisions buffered: %s",
                        len(self._buffer), exc)  # fmt: skip
        self.last_error = str(exc)
        self._close_store()

    def _connected(self) -> Store:
        if self._store is None:
            store = self._opener(self._url)
            try:
                migrate(store)
            except StoreError:
                store.close()
                raise
            self._store = store
        return self._store

    def _close_store(self) -> None:
        if self._store is not None:
            with contextlib.suppress(StoreError):
                self._store.close()
            self._store = None
