"""The column builders of the scored tables give what Arrow's own conversions give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from flows.batches import TS_MS, utc_ms, utf8_strings

OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=30))]
)
# the instants the store holds: from 1970 to before 2100 (flows.events)
MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30), timezones=OFFSETS
)


@given(times=st.lists(MOMENTS, max_size=20))
def test_utc_milliseconds_are_arrows_conversion(times: list[datetime]) -> None:
    expected = pa.array(times, pa.timestamp("us", tz="UTC")).cast(TS_MS, safe=False)
    assert utc_ms(times).equals(expected)


@given(texts=st.lists(st.text(max_size=30), max_size=20))
def test_utf8_bytes_become_the_same_strings(texts: list[str]) -> None:
    column = utf8_strings([t.encode() for t in texts])
    column.validate(full=True)
    assert column.equals(pa.array(texts, pa.string()))
