"""The portfolio at a glance, read from the serving views (not recomputed from raw rows)."""

from __future__ import annotations

import pyarrow as pa
from rich.console import Group
from rich.table import Table

from cli.tables import rich_table
from flows.store import Store

BANDS_SQL = """
SELECT
    band,
    sum(m.loans) AS loan_count,
    round(100 * loan_count / (SELECT sum(loans) FROM risk_band_minute), 1) AS share_pct,
    round(sum(m.pd_sum) / loan_count, 4) AS mean_pd,
    round(sum(m.exposure)) AS total_exposure,
    round(sum(m.expected_loss)) AS total_expected_loss
FROM risk_band_minute AS m
GROUP BY band
ORDER BY mean_pd
"""

TOTALS_SQL = """
SELECT
    sum(m.loans) AS loan_count,
    round(sum(m.pd_sum) / loan_count, 4) AS mean_pd,
    round(sum(m.exposure)) AS total_exposure,
    round(sum(m.expected_loss)) AS total_expected_loss,
    round(total_expected_loss / total_exposure, 4) AS el_rate
FROM risk_band_minute AS m
"""

DEAD_SQL = """
SELECT reason, sum(dead_letters) AS events
FROM dead_letters_minute
GROUP BY reason
ORDER BY events DESC
"""

DELINQUENCY_SQL = """
SELECT dpd_bucket, loans, round(balance) AS balance, round(expected_loss) AS expected_loss
FROM delinquency_monthly
-- The month with the most loans reporting: the latest full month, not the one under way.
WHERE month = (
    SELECT month FROM delinquency_monthly GROUP BY month ORDER BY sum(loans) DESC, month DESC
    LIMIT 1
)
ORDER BY indexOf(['current', '1-29', '30-59', '60-89', '90+'], dpd_bucket)
"""

WATCHLIST_SQL = """
SELECT loan_id, round(pd, 4) AS pd, band, exposure, round(expected_loss) AS expected_loss,
       sub_grade, addr_state, reason_texts
FROM watchlist LIMIT {limit:UInt32}
"""


def portfolio(store: Store, watchlist_size: int = 10) -> dict[str, pa.Table]:
    return {
        "bands": store.query_arrow(BANDS_SQL),
        "totals": store.query_arrow(TOTALS_SQL),
        "dead_letters": store.query_arrow(DEAD_SQL),
        "delinquency": store.query_arrow(DELINQUENCY_SQL),
        "watchlist": store.query_arrow(WATCHLIST_SQL, {"limit": watchlist_size}),
    }


def render(tables: dict[str, pa.Table]) -> Group:
    parts: list[Table] = [
        rich_table(tables["totals"], "Portfolio"),
        rich_table(tables["bands"], "Risk bands"),
    ]
    if tables["dead_letters"].num_rows:
        parts.append(rich_table(tables["dead_letters"], "Dead letters by reason"))
    if tables["delinquency"].num_rows:
        parts.append(rich_table(tables["delinquency"], "Delinquency by bucket, latest full month"))
    parts.append(rich_table(tables["watchlist"], "Watchlist: riskiest loans"))
    return Group(*parts)
