"""The portfolio at a glance, read from the serving views (not recomputed from raw rows)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from cli.sql_results import Result, query_result
from cli.tables import Column, Kind, rich_table
from flows.store import Store

BANDS_SQL = """
SELECT
    band,
    sum(m.loans) AS loan_count,
    round(loan_count / (SELECT sum(loans) FROM risk_band_minute), 4) AS share,
    round(sum(m.pd_lifetime_sum) / loan_count, 4) AS mean_pd_lifetime,
    round(sum(m.exposure)) AS total_exposure,
    round(sum(m.expected_loss_lifetime)) AS total_expected_loss_lifetime
FROM risk_band_minute AS m
GROUP BY band
ORDER BY mean_pd_lifetime
"""

TOTALS_SQL = """
SELECT
    sum(m.loans) AS loan_count,
    round(sum(m.pd_lifetime_sum) / loan_count, 4) AS mean_pd_lifetime,
    round(sum(m.exposure)) AS total_exposure,
    round(sum(m.expected_loss_lifetime)) AS total_expected_loss_lifetime,
    round(total_expected_loss_lifetime / total_exposure, 4) AS el_rate_lifetime
FROM risk_band_minute AS m
"""

DEAD_SQL = """
SELECT reason, sum(dead_letters) AS events
FROM dead_letters_minute
GROUP BY reason
ORDER BY events DESC
"""

DELINQUENCY_SQL = """
SELECT dpd_bucket, loans, round(balance) AS balance, round(expected_loss_12m) AS expected_loss_12m
FROM delinquency_monthly
-- The month with the most loans reporting: the latest full month, not the one under way.
WHERE month = (
    SELECT month FROM delinquency_monthly GROUP BY month ORDER BY sum(loans) DESC, month DESC
    LIMIT 1
)
ORDER BY indexOf(['current', '1-29', '30-59', '60-89', '90+'], dpd_bucket)
"""

WATCHLIST_SQL = """
SELECT loan_id, round(pd_12m, 4) AS pd_12m, band, exposure,
       round(expected_loss_12m) AS expected_loss_12m,
       sub_grade, addr_state, reason_codes, reason_texts
FROM watchlist
WHERE {band:String} = '' OR band = {band:String}
LIMIT {limit:UInt32}
"""

# Short headers and formats that keep the tables within 80 columns (--wide shows the names).
COLUMNS = {
    "loan_id": Column("loan"),
    "loan_count": Column("loans"),
    "share": Column("share", Kind.percent),
    "pd_12m": Column("PD 12m", Kind.percent),
    "mean_pd_lifetime": Column("mean PD life", Kind.percent),
    "el_rate_lifetime": Column("EL rate life", Kind.percent),
    "exposure": Column("exposure", Kind.money),
    "total_exposure": Column("exposure", Kind.money),
    "expected_loss_12m": Column("EL 12m", Kind.money),
    "total_expected_loss_lifetime": Column("EL life", Kind.money),
    "balance": Column("balance", Kind.money),
    "dpd_bucket": Column("DPD"),
    "sub_grade": Column("grade"),
    "addr_state": Column("state"),
    "reason_codes": Column("top reason", first_only=True),
    "reason_texts": Column("reasons", wide_only=True),
}


def watchlist_result(store: Store, limit: int, band: str | None = None) -> Result:
    return query_result(store, WATCHLIST_SQL, {"band": band or "", "limit": limit})


def portfolio(store: Store, watchlist_size: int = 10) -> dict[str, Result]:
    return {
        "bands": query_result(store, BANDS_SQL),
        "totals": query_result(store, TOTALS_SQL),
        "dead_letters": query_result(store, DEAD_SQL),
        "delinquency": query_result(store, DELINQUENCY_SQL),
        "watchlist": watchlist_result(store, watchlist_size),
    }


def render(tables: dict[str, Result], wide: bool = False) -> Group:
    def table(name: str, title: str) -> Table:
        return rich_table(tables[name], title, COLUMNS, wide)

    parts: list[Table] = [table("totals", "Portfolio"), table("bands", "Risk bands")]
    if tables["dead_letters"].rows:
        parts.append(table("dead_letters", "Dead letters by reason"))
    if tables["delinquency"].rows:
        parts.append(table("delinquency", "Delinquency by bucket, latest full month"))
    parts.append(table("watchlist", "Watchlist: riskiest loans"))
    return Group(*parts)
