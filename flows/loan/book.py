"""The per-loan book kept by the dataflow's stateful step: applications open loans,
repayments move them, and every repayment on an open loan becomes an observation to score.

Pure apart from the clock: no Bytewax here (``flows.steps.loan_state_step`` wraps it).
A repayment whose application has not arrived is kept as pending on its loan and counted;
when the application arrives, each pending repayment is applied in arrival order and observed
then, so observations do not depend on how the two topics interleaved. A repeated event
changes nothing and is not observed twice (it is counted in ``repeats``).

One event can never stop the flow: an event the state logic fails on becomes a dead letter
(``state_error``, in ``rejected``) and leaves the book as it was before that event.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, final

import msgspec

from flows.events import EARLIEST, LATEST, LoanApplication, LoanRepayment, epoch_ms
from flows.loan.behaviour import FEATURE_ROW
from flows.loan.observe import apply_and_describe
from flows.loan.state import LoanState, open_loan
from flows.validation import DeadLetter

SHARDS = 64


class Segment(msgspec.Struct, frozen=True, gc=False):
    grade: str
    sub_grade: str
    addr_state: str
    origination_version: str


# No event time converts to this (it is before 1970, which validation rejects).
_UNCONVERTED = -(2**63)


# final: a `type(e) is Opened` check then tells the checker the other branch holds a Repaid
@final
class Opened(msgspec.Struct, frozen=True, gc=False):
    """An application, with the PD the origination model gave it."""

    app: LoanApplication
    pd: float
    model_version: str
    origin: str = ""


@final
class Repaid(msgspec.Struct, frozen=True, gc=False):
    """A repayment, when the flow received it (µs since the epoch), its source's timestamp
    (Kafka's, in ms; the receive time when the source has none) and its own event time (ms, as
    its ``raw_events`` row stores it). Plain integers: the live scorer turns a whole batch of
    them into columns without a call per event, and converts no event time a second time."""

    event: LoanRepayment
    origin: str
    received_us: int
    source_ms: int
    # Given by the flow, which converts a whole batch's times at once; converted here when not
    # given (a single event, or a recovery snapshot written before this field existed).
    event_ms: int = _UNCONVERTED

    def __post_init__(self) -> None:
        if self.event_ms == _UNCONVERTED:
            msgspec.structs.force_setattr(self, "event_ms", epoch_ms(self.event.event_time))

    def __reduce__(self) -> tuple[type[Repaid], tuple[LoanRepayment, str, int, int]]:
        # Pickled (in recovery snapshots, waiting for an application) without event_ms, which
        # loading computes again: versions before that field take exactly these four.
        return Repaid, (self.event, self.origin, self.received_us, self.source_ms)


LoanEvent = Opened | Repaid

STATE_ERROR = "state_error"
_EARLIEST_YEAR, _LATEST_YEAR = EARLIEST.year, LATEST.year
_ENCODER = msgspec.json.Encoder()


def state_dead_letter(event: LoanEvent, error: Exception) -> DeadLetter:
    """A dead letter for an event the state logic failed on. The payload is the decoded event
    encoded again (its raw bytes are in ``raw_events`` under the same origin)."""
    decoded: LoanApplication | LoanRepayment
    if isinstance(event, Opened):
        origin, decoded = event.origin, event.app
    else:
        origin, decoded = event.origin, event.event
    detail = f"loan state cannot take this event: {type(error).__name__}: {error}"
    return DeadLetter(origin, STATE_ERROR, detail, _ENCODER.encode(decoded))


class Observation(msgspec.Struct, frozen=True, gc=False):
    """A repayment applied to an open loan: the state after it and its behaviour features.

    A frozen Struct rather than a frozen dataclass: one is built per repayment, in ~0.06 µs
    against ~0.6 µs (a frozen dataclass sets each field through ``object.__setattr__``).
    ``gc=False`` keeps these short-lived objects out of the cyclic collector's work; nothing an
    observation holds refers back to it, so it cannot be part of a reference cycle.
    """

    repaid: Repaid
    state: LoanState
    # the behaviour features packed as a FEATURE_ROW; ``features`` reads them as numbers
    packed: bytes
    days_past_due: int
    segment: Segment

    @property
    def features(self) -> tuple[float, ...]:
        return FEATURE_ROW.unpack(self.packed)


def opens_safely(app: LoanApplication) -> bool:
    """Whether :func:`open_loan` cannot fail on ``app``: terms inside what validation accepts
    (flows.events), the date away from the edges of the calendar's range. A book may only defer
    opening such a loan; any other is opened at once, so that its failure is its own."""
    rate, amount = app.int_rate, app.funded_amnt
    return (
        rate is not None
        and 0.0 <= rate <= 100.0
        and 0.0 < amount <= 1e7
        and app.term_months in (36, 60)
        and _EARLIEST_YEAR < app.event_time.year < _LATEST_YEAR
    )


class LoanEntry(msgspec.Struct, gc=False):
    """One loan in the running book: its state, segment and the repayments waiting for its
    application.

    A loan that has only opened keeps its application and PD, and its state is built at the
    first read (its first repayment, or a snapshot): a run of applications alone never pays
    for installment schedules. Only applications that open safely are kept so
    (:func:`opens_safely`), so a later event is never blamed for its application. It holds a
    state or an application, never both.

    ``gc=False``: the cyclic garbage collector never tracks an entry. An entry lives as long
    as its loan, and the collector's full collections walk every object it tracks, so a
    tracked entry per loan made them walk the whole book (0.2 s of a run of 200,000
    applications). An entry refers only to untracked states, segments and events and to a
    dict of untracked repayments, and nothing refers back to it: it cannot be in a cycle.
    Recovery snapshots pickle it as a :class:`BookEntry`.
    """

    _state: LoanState | None = None
    segment: Segment | None = None
    # repayments waiting for their application, by event id
    waiting: dict[str, Repaid] = msgspec.field(default_factory=dict)
    _opened: Opened | None = None

    @property
    def state(self) -> LoanState:
        state = self._state
        if state is None:
            opened = self._opened
            assert opened is not None
            state = self._state = open_loan(opened.app, opened.pd)
            self._opened = None
        return state

    def fields(self) -> tuple[LoanState, Segment | None, dict[str, Repaid]]:
        """(state, segment, waiting), the state built if it was not yet."""
        return self.state, self.segment, self.waiting

    def __reduce__(self) -> tuple[type[BookEntry], tuple[LoanState, Segment | None, dict]]:
        return BookEntry, self.fields()


class BookEntry:
    """One loan as a recovery snapshot or a resumed book holds it (:class:`LoanEntry` while the
    book runs): its state, segment and the repayments waiting for its application. Its pickled
    form is fixed, so snapshots written by any version load in any other.
    """

    __slots__ = ("segment", "state", "waiting")

    def __init__(
        self,
        state: LoanState,
        segment: Segment | None = None,
        waiting: dict[str, Repaid] | None = None,
    ) -> None:
        self.state = state
        self.segment = segment
        # repayments waiting for their application, by event id
        self.waiting: dict[str, Repaid] = {} if waiting is None else waiting

    def __eq__(self, other: object) -> bool:
        if type(other) is not BookEntry:
            return NotImplemented
        return self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state, segment, waiting = self.fields()
        return f"BookEntry(state={state!r}, segment={segment!r}, waiting={waiting!r})"

    def fields(self) -> tuple[LoanState, Segment | None, dict[str, Repaid]]:
        return self.state, self.segment, self.waiting

    # Pickled as the slotted dataclass it was before pickled itself, (None, {slot: value}), so
    # recovery snapshots written by earlier versions still load, and these load there.
    def __getstate__(self) -> tuple[None, dict[str, object]]:
        state, segment, waiting = self.fields()
        return None, {"state": state, "segment": segment, "waiting": waiting}

    def __setstate__(self, pickled: tuple[None, dict[str, Any]]) -> None:
        slots = pickled[1]
        self.state, self.segment, self.waiting = slots["state"], slots["segment"], slots["waiting"]


_SHARD_KEYS = tuple(map(str, range(SHARDS)))


def shard_of(loan_id: str) -> str:
    """The state key of a loan: stable across processes (unlike ``hash``)."""
    return _SHARD_KEYS[zlib.crc32(loan_id.encode()) % SHARDS]


def shard_events(events: list[LoanEvent]) -> list[tuple[str, list[LoanEvent]]]:
    """Group a batch's loan events by state key, keeping their order within each key."""
    # a list per shard indexed by the checksum: no key string or dict lookup per event
    groups: list[list[LoanEvent]] = [[] for _ in _SHARD_KEYS]
    crc32 = zlib.crc32
    for event in events:
        loan_id = event.app.loan_id if type(event) is Opened else event.event.loan_id
        groups[crc32(loan_id.encode()) % SHARDS].append(event)
    return [(key, group) for key, group in zip(_SHARD_KEYS, groups, strict=True) if group]


# Entries change in place (``state`` on every repayment, ``waiting``) while states are never
# changed: a new entry and ``waiting`` dict per loan decouple a copy from the book.


def _running(entries: Mapping[str, BookEntry]) -> dict[str, LoanEntry]:
    return {loan: LoanEntry(e.state, e.segment, dict(e.waiting)) for loan, e in entries.items()}


def _copy(entries: Mapping[str, LoanEntry]) -> dict[str, BookEntry]:
    return {loan: BookEntry(e.state, e.segment, dict(e.waiting)) for loan, e in entries.items()}


class LoanBook:
    """``track_changes``: keep the ids of the loans events reached since the last
    :meth:`take_changed` (every loan it starts with counts as changed), for snapshots that
    encode only those; off, the book keeps nothing for it."""

    def __init__(
        self, entries: dict[str, BookEntry] | None = None, *, track_changes: bool = False
    ) -> None:
        # copied, so that applying events never changes the snapshot the book resumed from
        self._entries: dict[str, LoanEntry] = _running(entries) if entries else {}
        self._changed: set[str] | None = set(self._entries) if track_changes else None
        # repayments held for an application not yet seen, in total
        self.pending = sum(len(e.waiting) for e in self._entries.values())
        # repeated events seen (changed nothing), and events refused, since the last take()
        self.repeats = 0
        self.rejected: list[DeadLetter] = []

    def take_rejected(self) -> tuple[list[DeadLetter], int]:
        """The dead letters and the repeat count since the last call, then both reset."""
        rejected, repeats = self.rejected, self.repeats
        self.rejected, self.repeats = [], 0
        return rejected, repeats

    def snapshot(self) -> dict[str, BookEntry]:
        return _copy(self._entries)

    @property
    def entries(self) -> Mapping[str, LoanEntry]:
        """The live entries, read-only: they change as events are applied."""
        return MappingProxyType(self._entries)

    def take_changed(self) -> set[str]:
        """The loans events reached since the last call (a superset of those that changed)."""
        if self._changed is None:
            raise ValueError("this book does not track changes")
        changed, self._changed = self._changed, set()
        return changed

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, events: list[LoanEvent]) -> list[Observation]:
        observed: list[Observation] = []
        for event in events:
            self._guarded(event, observed)
        return observed

    def _guarded(self, event: LoanEvent, observed: list[Observation]) -> None:
        # Each step below computes before it changes the book, so an event that raises leaves
        # the book as it was; the exception is the event's problem, never the flow's.
        try:
            if type(event) is Opened:
                if self._changed is not None:
                    self._changed.add(event.app.loan_id)
                self._open(event, observed)
            else:
                # marked here, where every event enters, not at each place an entry changes:
                # no change can then be missed by a snapshot
                if self._changed is not None:
                    self._changed.add(event.event.loan_id)
                self._repay(event, observed)
        except Exception as exc:  # any failure of one event is that event's alone
            self.rejected.append(state_dead_letter(event, exc))

    def _open(self, opened: Opened, observed: list[Observation]) -> None:
        app = opened.app
        entry = self._entries.get(app.loan_id)
        if entry is not None and entry.state.is_open:
            return  # a replayed application
        sub_grade = app.sub_grade or ""  # "" for an application not yet graded
        segment = Segment(sub_grade[:1], sub_grade, app.addr_state, opened.model_version)
        if entry is None and opens_safely(app):
            # its state waits for a first read, which cannot fail for it
            self._entries[app.loan_id] = LoanEntry(segment=segment, _opened=opened)
            return
        self._entries[app.loan_id] = LoanEntry(open_loan(app, opened.pd), segment)
        if entry is None:
            return
        # Arrival order, as if the application had come first: each observation then sees the
        # same earlier events however the applications and repayments topics interleaved.
        waiting = list(entry.waiting.values())
        self.pending -= len(waiting)
        for repaid in waiting:
            self._guarded(repaid, observed)

    def _repay(self, repaid: Repaid, observed: list[Observation]) -> None:
        event = repaid.event
        entry = self._entries.get(event.loan_id)
        # the slot read directly, the property only for a loan that has only opened: this
        # runs once per repayment
        before = None if entry is None else (entry._state or entry.state)
        state, packed, dpd = apply_and_describe(before, event)
        if state is before:
            self.repeats += 1  # the same event again
            return
        if packed is None:  # still waiting for its application
            if entry is None:
                entry = LoanEntry(state)
                self._entries[event.loan_id] = entry
            else:
                entry._state, entry._opened = state, None
            if event.event_id not in entry.waiting:
                entry.waiting[event.event_id] = repaid
                self.pending += 1
            return
        assert entry is not None and entry.segment is not None
        # in place rather than a new entry per repayment; snapshot() copies the entries
        entry._state = state  # built above if it had only opened: nothing else to clear
        observed.append(Observation(repaid, state, packed, dpd, entry.segment))


class BookOutcome(msgspec.Struct, frozen=True):
    """What one batch of a shard's events did to its book."""

    observed: list[Observation]
    pending_change: int = 0  # net repayments now waiting (negative once applied)
    repeats: int = 0
    dead: list[DeadLetter] = msgspec.field(default_factory=list)
    # observations of stored repayments whose live scores the store lacks, replayed from its
    # history: scored now, but not events this run read
    restored: int = 0
