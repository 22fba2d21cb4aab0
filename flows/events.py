"""Versioned event schemas. The msgspec types below are the schema: they validate at ingest
and generate the published JSON schemas (flows/schemas/, written by
`python -m flows.schema_publish`, checked by a test).

Ranges reject what cannot be a real loan (negative or absurd amounts); NaN and infinities are not
JSON and fail to decode; unknown categories fail as enum errors.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, final, get_args, get_type_hints

import msgspec
from msgspec import Meta

APPLICATION_SCHEMA_VERSION = 1

# The characters an id may hold. The pattern is published in the schema but checked after
# decoding (validation.id_problem), not by msgspec: msgspec calls the regex once per string,
# which cost more than the rest of the decode, while a batch's ids are checked in one call.
ID_CHARACTERS = "A-Za-z0-9_.:-"
ID_PATTERN = f"^[{ID_CHARACTERS}]+$"
Id = Annotated[str, Meta(min_length=1, max_length=64, extra_json_schema={"pattern": ID_PATTERN})]
# Times the store holds and its views key on without wrapping: DateTime columns and unsigned
# epoch milliseconds (the version of the latest-event views) start at 1970; ending at 2100
# keeps a loan's last due date (60 months on) inside ClickHouse's DateTime range (to 2106).
# Checked after decoding (msgspec has no bounds for times): see validation.time_problem.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as UTC milliseconds since the epoch (its own offset applied), the
    sub-millisecond part dropped as Arrow's unsafe cast drops it for times after 1970. The
    subtraction costs less than Arrow's conversion of a datetime through its tzinfo."""
    return (moment - EARLIEST) // _MS


EARLIEST_DATE = EARLIEST.date()
LATEST_DATE = LATEST.date()
_BOUNDS = f"from {EARLIEST_DATE} to before {LATEST_DATE}"

UtcTime = Annotated[
    datetime, Meta(tz=True, description=f"RFC 3339 time with a UTC offset, {_BOUNDS}")
]
EventDate = Annotated[date, Meta(description=f"RFC 3339 date, {_BOUNDS}")]
Money = Annotated[float, Meta(ge=0, le=1e9)]
LoanAmount = Annotated[float, Meta(gt=0, le=1e7)]
Percent = Annotated[float, Meta(ge=0, le=1000)]
Rate = Annotated[float, Meta(ge=0, le=100)]
Count = Annotated[int, Meta(ge=0, le=1000)]

SubGrade = Literal[
    "A1", "A2", "A3", "A4", "A5", "B1", "B2", "B3", "B4", "B5",
    "C1", "C2", "C3", "C4", "C5", "D1", "D2", "D3", "D4", "D5",
    "E1", "E2", "E3", "E4", "E5", "F1", "F2", "F3", "F4", "F5",
    "G1", "G2", "G3", "G4", "G5",
]  # fmt: skip
State = Literal[
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL",
    "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE",
    "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VA", "VT", "WA", "WI", "WV", "WY",
]  # fmt: skip
Verification = Literal["not_verified", "verified", "source_verified"]
TermMonths = Literal[36, 60]

SUB_GRADES: tuple[str, ...] = get_args(SubGrade)
STATES: tuple[str, ...] = get_args(State)


# final (as LoanRepayment): a `type(e) is LoanApplication` check then narrows both branches
@final
class LoanApplication(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A loan application at origination (schema version 1).

    Bureau fields may be absent (``null``): the models score a missing value in a bin of its
    own. So may the price (``int_rate``) and grade (``sub_grade``): a lender scoring its own
    applicants has neither before it prices the loan.
    """

    schema_version: Literal[1]
    event_type: Literal["loan_application"]
    event_id: Id
    loan_id: Id
    borrower_id: Id
    event_time: UtcTime
    funded_amnt: LoanAmount
    term_months: TermMonths
    addr_state: State
    verification_status: Verification
    annual_inc: Money
    int_rate: Rate | None = None
    sub_grade: SubGrade | None = None
    emp_length_years: Annotated[int, Meta(ge=0, le=10)] | None = None
    delinq_2yrs: Count | None = None
    inq_last_6mths: Count | None = None
    revol_util: Percent | None = None
    acc_now_delinq: Count | None = None
    open_il_6m: Count | None = None
    open_il_12m: Count | None = None
    open_il_24m: Count | None = None
    total_bal_il: Money | None = None
    all_util: Percent | None = None
    inq_fi: Count | None = None
    inq_last_12m: Count | None = None
    delinq_amnt: Money | None = None
    num_il_tl: Count | None = None
    total_il_high_credit_limit: Money | None = None


REPAYMENT_SCHEMA_VERSION = 1


@final
class LoanRepayment(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One installment's outcome on a loan (schema version 1).

    ``payment_date`` is ``null`` for a missed installment; ``amount_paid`` is then 0.
    ``outstanding_balance`` is the principal still owed after this event.
    """

    schema_version: Literal[1]
    event_type: Literal["loan_repayment"]
    event_id: Id
    loan_id: Id
    event_time: UtcTime
    installment_number: Annotated[int, Meta(ge=1, le=600)]
    due_date: EventDate
    amount_due: Money
    amount_paid: Money
    payment_date: EventDate | None = None
    outstanding_balance: Money


def _id_fields(struct: type[msgspec.Struct]) -> tuple[str, ...]:
    hints = get_type_hints(struct, include_extras=True)
    return tuple(name for name in struct.__struct_fields__ if hints[name] == Id)


# The fields of each event type that hold an id, in field order.
ID_FIELDS: dict[type[msgspec.Struct], tuple[str, ...]] = {
    struct: _id_fields(struct) for struct in (LoanApplication, LoanRepayment)
}


def _json_schema(struct: type[msgspec.Struct], name: str, version: int) -> dict[str, object]:
    schema = msgspec.json.schema(struct)
    schema["$id"] = f"https://riskctl.dev/schemas/{name}.v{version}.json"
    schema["title"] = f"riskctl {name.replace('_', ' ')} event, schema version {version}"
    return schema


def application_json_schema() -> dict[str, object]:
    """The published JSON schema of loan-application events."""
    return _json_schema(LoanApplication, "loan_application", APPLICATION_SCHEMA_VERSION)


def repayment_json_schema() -> dict[str, object]:
    """The published JSON schema of loan-repayment events."""
    return _json_schema(LoanRepayment, "loan_repayment", REPAYMENT_SCHEMA_VERSION)
