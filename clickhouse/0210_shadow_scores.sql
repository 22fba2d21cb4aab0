-- Shadow scoring: a challenger scores every application beside the champion in the running
-- flow, and its PD and band are kept here, apart from scored_events, so nothing a user reads
-- as the issued score changes. One row per scored event (the writer adds a row only beside a
-- score issued in the same write, so a replay adds nothing and never pairs a challenger with
-- a score an earlier run issued). Both PDs are lifetime PDs, banded by the flow's thresholds.
CREATE TABLE IF NOT EXISTS shadow_scores
(
    event_id String,
    loan_id String,
    event_time DateTime64(3, 'UTC'),
    processed_at DateTime64(6, 'UTC'),
    model_kind LowCardinality(String),
    champion_version LowCardinality(String),
    challenger_version LowCardinality(String),
    champion_pd_lifetime Float64,
    challenger_pd_lifetime Float64,
    champion_band LowCardinality(String),
    challenger_band LowCardinality(String)
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 1000, min_bytes_for_wide_part = 134217728;

-- Per champion/challenger pair: how many events both scored, and each one's PD distribution.
CREATE VIEW IF NOT EXISTS shadow_pd_by_version AS
SELECT
    champion_version,
    challenger_version,
    count() AS events,
    avg(champion_pd_lifetime) AS champion_mean_pd_lifetime,
    avg(challenger_pd_lifetime) AS challenger_mean_pd_lifetime,
    quantiles(0.5, 0.9, 0.99)(champion_pd_lifetime) AS champion_pd_lifetime_quantiles,
    quantiles(0.5, 0.9, 0.99)(challenger_pd_lifetime) AS challenger_pd_lifetime_quantiles,
    avg(abs(challenger_pd_lifetime - champion_pd_lifetime)) AS mean_abs_pd_lifetime_change,
    countIf(challenger_band != champion_band) / count() AS band_changed_share
FROM shadow_scores FINAL
GROUP BY champion_version, challenger_version;

-- Band migration: events by the champion's band and the challenger's.
CREATE VIEW IF NOT EXISTS shadow_band_migration AS
SELECT
    champion_version,
    challenger_version,
    champion_band,
    challenger_band,
    count() AS events
FROM shadow_scores FINAL
GROUP BY champion_version, challenger_version, champion_band, challenger_band;

-- Once outcomes arrive: each model's AUC on the loans whose first 12 months are known from
-- their repayments (loan_month_end). Bad: 90+ days past due at a month end within 12 months of
-- origination; good: 12 months observed without. Loans younger than that and not yet bad are
-- left out. The label is the 12-month outcome while both PDs are lifetime PDs: AUC compares
-- rankings only, which a horizon does not change, but it is not a test of calibration.
CREATE VIEW IF NOT EXISTS shadow_outcome_auc AS
WITH outcomes AS
(
    SELECT
        loan_id,
        countIf(dpd_bucket = '90+' AND month_end <= addMonths(origination_date, 12)) > 0 AS bad,
        max(month_end) >= addMonths(any(origination_date), 12) AS seasoned
    FROM loan_month_end
    GROUP BY loan_id
    HAVING bad OR seasoned
)
SELECT
    champion_version,
    challenger_version,
    count() AS loans,
    sum(bad) AS bads,
    arrayAUC(groupArray(champion_pd_lifetime), groupArray(toUInt8(bad))) AS champion_auc,
    arrayAUC(groupArray(challenger_pd_lifetime), groupArray(toUInt8(bad))) AS challenger_auc
FROM shadow_scores FINAL
INNER JOIN outcomes USING loan_id
GROUP BY champion_version, challenger_version;
