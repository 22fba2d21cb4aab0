"""The one way riskctl reads and writes instants and windows (flows/times.py): its edge cases,
each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from flows.dashboards import parse_span
from flows.errors import UsageError
from flows.times import (
    TimeInputError,
    Window,
    iso_utc,
    parse_duration,
    parse_instant,
    resolve_window,
    sql_time,
)

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2024-05-01T12:00Z", NOON),
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00+00:00", NOON),
        ("2024-05-01T14:00:00+02:00", NOON),
        ("2024-05-01T06:30:00-05:30", NOON),
        # no zone: UTC, as the options document
        ("2024-05-01T12:00", NOON),
        ("2024-05-01 12:00:00", NOON),
        ("2024-05-01", NOON.replace(hour=0)),
        ("  2024-05-01T12:00Z\n", NOON),
        ("2024-05-01T12:00:00.250Z", NOON.replace(microsecond=250_000)),
        ("2024-05-01T12:00:00.123456Z", NOON.replace(microsecond=123_456)),
        # across midnight and a leap day when converted
        ("2024-03-01T01:00:00+02:00", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
    ],
)
def test_instants_are_read_as_utc(text: str, instant: datetime) -> None:
    moment = parse_instant(text)
    assert moment == instant
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2024-13-01", "2024-02-30T00:00Z", "2024-05-01T25:00Z", "1714564800",
     "2024-05-01T12:00:00+25:00", "2024-05-01T12:00 UTC"],
)  # fmt: skip
def test_anything_else_is_a_usage_error_naming_what_was_read(text: str) -> None:
    with pytest.raises(TimeInputError) as caught:
        parse_instant(text, "--from")
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert str(caught.value).startswith("--from must be an ISO-8601 time")


@pytest.mark.parametrize(
    ("moment", "timespec", "text"),
    [
        (NOON, "auto", "2024-05-01T12:00:00Z"),
        (NOON.replace(microsecond=5), "auto", "2024-05-01T12:00:00.000005Z"),
        (NOON.replace(microsecond=250_000), "seconds", "2024-05-01T12:00:00Z"),
        (NOON.replace(microsecond=250_999), "milliseconds", "2024-05-01T12:00:00.250Z"),
        (NOON, "microseconds", "2024-05-01T12:00:00.000000Z"),
        (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "auto",
         "2024-05-01T12:00:00Z"),
    ],
)  # fmt: skip
def test_instants_are_written_in_utc_with_a_z(moment: datetime, timespec: str, text: str) -> None:
    assert iso_utc(moment, timespec) == text  # type: ignore[arg-type]


def test_a_naive_time_is_never_written_as_if_it_were_utc() -> None:
    with pytest.raises(ValueError):
        iso_utc(datetime(2024, 5, 1, 12, 0))
    with pytest.raises(ValueError):
        sql_time(datetime(2024, 5, 1, 12, 0))


def test_clickhouse_parameters_are_utc_wall_time_to_the_microsecond() -> None:
    moment = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert sql_time(moment) == "2024-05-01 12:00:00.123456"
    assert Window(NOON, moment).params() == {
        "start": "2024-05-01 12:00:00.000000",
        "end": "2024-05-01 12:00:00.123456",
    }


def test_windows() -> None:
    now = NOON
    assert resolve_window("1h", None, None, now) == Window(now - timedelta(hours=1), now)
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2d") == timedelta(days=2)
    explicit = resolve_window(None, "2024-05-01T10:00", "2024-05-01T11:30Z", now)
    assert explicit.start == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert explicit.end == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    for bad in (("5x", None, None), ("1h", "2024-05-01", None), (None, None, None)):
        with pytest.raises(TimeInputError):
            resolve_window(*bad, now)
    with pytest.raises(TimeInputError):
        resolve_window(None, "2024-05-02", "2024-05-01", now)
    with pytest.raises(TimeInputError):
        Window(NOON.replace(tzinfo=None), NOON + timedelta(hours=1))
    with pytest.raises(TimeInputError):
        Window(NOON, NOON)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("now-6h", timedelta(hours=6)),
        ("6h", timedelta(hours=6)),
        ("now-30m", timedelta(minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        (" now-7d ", timedelta(days=7)),
    ],
)
def test_grafana_relative_ranges_read_through_the_one_duration_parser(
    text: str, span: timedelta
) -> None:
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["now-0h", "now-", "now-6x", "now-6h-1m", "now"])
def test_unreadable_grafana_ranges_are_input_errors(text: str) -> None:
    with pytest.raises(TimeInputError):
        parse_span(text)
