"""Recovery snapshots of a loan book whose cost follows what changed, not the book's size.

Bytewax keeps, per state key, the last snapshot it was given, pickled, and asks every key woken
in an epoch for a new one at its end. Pickling every loan of a shard at every epoch was the
cost (about 50 µs a loan here). So a book's records stay encoded between snapshots: only the
loans that events reached since the last snapshot are encoded again, and a snapshot is a
shallow copy of the records, which pickles as a run of byte strings.

A record is lean: an open loan's (nearly every loan's) is plain values and msgpack, without the
due days its contract rebuilds; a loan that has only opened is about 150 bytes (580 pickled
whole). Bytewax still stores each woken shard's records whole: the copy is of bytes, not
objects. Pure: no Bytewax here.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from flows.loan.book import BookEntry, LoanEntry, Segment
from flows.loan.schedule import due_days
from flows.loan.state import LoanState

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_FIELDS = msgspec.structs.fields(LoanState)
# the state's fields as a msgpack array, typed from the Struct itself so the two cannot drift
_ROW = msgspec.msgpack.Decoder(tuple[tuple(f.type for f in _FIELDS)])  # type: ignore[misc]
_ENCODE = msgspec.msgpack.Encoder().encode
_NAMES = [f.name for f in _FIELDS]
_TIME, _DATE, _TERM, _DUE_DAYS = map(
    _NAMES.index, ("origination_time", "origination_date", "term_months", "due_days")
)
# msgpack's integers stop at 64 bits; a loan with installments past 63 has a wider mask
_MASK_LIMIT = 1 << 64

# An open loan without waiting repayments (nearly every loan): the origination time as RFC 3339
# text (its UTC offset kept; msgpack would keep only the instant, and the date a repayment
# falls on depends on the offset), the segment's fields, and the rest of the state as msgpack
# without its due days, which are rebuilt from the contract. Plain values only: pickling a class
# reference costs more than all the rest of a loan's record.
Compact = tuple[str, str, str, str, str, bytes]


class BookSnapshot:
    """One shard's book: each loan's record, encoded on its own (see the module)."""

    __slots__ = ("records",)

    def __init__(self, records: dict[str, bytes]) -> None:
        self.records = records

    def __reduce__(self) -> tuple[type[BookSnapshot], tuple[dict[str, bytes]]]:
        return (BookSnapshot, (self.records,))

    def entries(self) -> dict[str, BookEntry]:
        return {loan: decode_entry(record) for loan, record in self.records.items()}


def _compact(entry: BookEntry | LoanEntry) -> Compact | None:
    state, segment = entry.state, entry.segment
    time, opened = state.origination_time, state.origination_date
    if time is None or opened is None or segment is None or entry.waiting or state.pending:
        return None
    if state.recorded_mask >= _MASK_LIMIT:
        return None
    dues = due_days(opened, state.term_months)
    if state.due_days is not dues and state.due_days != dues:  # `is`: shared, nearly always
        return None
    row = list(msgspec.structs.astuple(state))
    row[_TIME], row[_DUE_DAYS] = None, ()
    body = _ENCODE(row)
    return (
        time.isoformat(),
        segment.grade,
        segment.sub_grade,
        segment.addr_state,
        segment.origination_version,
        body,
    )


def encode_entry(entry: BookEntry | LoanEntry) -> bytes:
    """A loan's record: compact for an open loan without waiting repayments, else the entry
    pickled whole (a placeholder holding repayments that came before their application)."""
    compact = _compact(entry)
    return pickle.dumps(entry if compact is None else compact, protocol=_PROTOCOL)


def decode_entry(record: bytes) -> BookEntry:
    value = pickle.loads(record)
    if type(value) is not tuple:
        entry: BookEntry = value
        return entry
    time, grade, sub_grade, addr_state, version, body = value
    row = list(_ROW.decode(body))
    row[_TIME] = datetime.fromisoformat(time)
    row[_DUE_DAYS] = due_days(row[_DATE], row[_TERM])  # only open loans are compact
    return BookEntry(LoanState(*row), Segment(grade, sub_grade, addr_state, version))


class SnapshotRecords:
    """The encoded records of one book, brought up to date one changed loan at a time."""

    def __init__(self, records: dict[str, bytes] | None = None) -> None:
        self._records: dict[str, bytes] = dict(records) if records else {}
        self.encoded = 0  # records encoded so far: what snapshots cost beyond copying

    def take(self, entries: Mapping[str, LoanEntry], changed: Iterable[str]) -> BookSnapshot:
        records = self._records
        for loan in changed:
            entry = entries.get(loan)
            if entry is None:
                records.pop(loan, None)
            else:
                records[loan] = encode_entry(entry)
                self.encoded += 1
        # a copy of references only: the snapshot must not see the next epoch's changes
        return BookSnapshot(dict(records))
