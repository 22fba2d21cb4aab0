"""Instants and windows of time, one way each: every ISO-8601 time riskctl reads goes through
:func:`parse_instant`, every one it writes through :func:`iso_utc` (or :func:`sql_time` for a
ClickHouse parameter), and every half-open span of time is a :class:`Window`.

All of them are in UTC. A time written without a zone is taken as UTC, because that is what
the CLI documents ("UTC if no zone") and what event times are; an aware one is converted.
A naive ``datetime`` handed to a formatter is a programming error, not a time to guess at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from flows.clock import utc_now
from flows.errors import UsageError

TimeSpec = Literal["auto", "seconds", "milliseconds", "microseconds"]
EXAMPLE = "2024-05-01T13:00Z"


class TimeInputError(UsageError, ValueError):
    """A time or window given as input cannot be read, or is empty."""


def parse_instant(text: str, what: str = "time") -> datetime:
    """The aware UTC instant an ISO-8601 text names: ``Z`` or an offset, or none for UTC.

    A date alone is its midnight. Surrounding blanks are ignored; anything else that is not
    ISO-8601 is a :class:`TimeInputError` naming ``what`` (an option, a variable, a field).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TimeInputError(
            f"{what} must be an ISO-8601 time such as {EXAMPLE}, got {text!r}"
        ) from exc
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: riskctl writes only aware times")
    return moment.astimezone(UTC)


def iso_utc(moment: datetime, timespec: TimeSpec = "auto") -> str:
    """``moment`` in UTC as ISO-8601 with a ``Z``: ``2024-05-01T13:00:00.250Z``.

    ``auto`` writes microseconds only when there are some, as :meth:`datetime.isoformat` does.
    """
    return _utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")


def sql_time(moment: datetime) -> str:
    """UTC wall time to the microsecond, as a ClickHouse ``DateTime64(p, 'UTC')`` query
    parameter is written (ClickHouse keeps the first ``p`` digits)."""
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class Window:
    """The instants ``start <= t < end``; both bounds aware, ``start`` before ``end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise TimeInputError("window bounds need a time zone")
        if not self.start < self.end:
            raise TimeInputError(
                f"window start {iso_utc(self.start)} is not before its end {iso_utc(self.end)}"
            )

    def params(self) -> dict[str, str]:
        """Query parameters ``start`` and ``end`` for ``{start:DateTime64(p, 'UTC')}``."""
        return {"start": sql_time(self.start), "end": sql_time(self.end)}


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d`` or ``1w``."""
    match = _DURATION.match(text.lower())
    if not match:
        raise TimeInputError(f"cannot read duration {text!r}: use e.g. 90s, 15m, 1h, 2d, 1w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise TimeInputError(f"duration {text!r} must be positive")
    return timedelta(seconds=seconds)


def resolve_window(
    since: str | None, start: str | None, end: str | None, now: datetime | None = None
) -> Window:
    """``--since`` back from ``--to`` (default now), or the explicit ``--from``-``--to`` range."""
    if since is not None and start is not None:
        raise TimeInputError("give either --since or --from, not both")
    if since is None and start is None:
        raise TimeInputError("give --since (e.g. 1h) or --from (and optionally --to)")
    stop = parse_instant(end, "--to") if end else (now or utc_now())
    if since is not None:
        return Window(stop - parse_duration(since), stop)
    assert start is not None
    return Window(parse_instant(start, "--from"), stop)
