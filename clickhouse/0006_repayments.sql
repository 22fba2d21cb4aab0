-- Repayments: live scores per repayment event, each loan's delinquency by month, roll rates.

ALTER TABLE ops_batches ADD COLUMN IF NOT EXISTS pending_repayments Int32 DEFAULT 0;

CREATE TABLE IF NOT EXISTS repayment_scores
(
    event_id String,
    loan_id String,
    event_time DateTime64(3, 'UTC'),
    received_at DateTime64(6, 'UTC'),
    source_time DateTime64(3, 'UTC'),
    processed_at DateTime64(6, 'UTC'),
    installment_number UInt16,
    amount_due Float64,
    amount_paid Float64,
    dpd_bucket LowCardinality(String),
    model_version LowCardinality(String),
    origination_model_version LowCardinality(String),
    origination_pd Float64,
    pd Float64,
    band LowCardinality(String),
    exposure Float64,
    lgd Float64,
    expected_loss Float64,
    grade LowCardinality(String),
    sub_grade LowCardinality(String),
    addr_state LowCardinality(String),
    reason_codes Array(LowCardinality(String)),
    days_past_due Float64,
    worst_days_past_due Float64,
    installments_in_arrears Float64,
    missed_last_3 Float64,
    missed_last_6 Float64,
    missed_last_12 Float64,
    on_time_ratio Float64,
    paid_to_due_ratio Float64,
    outstanding_balance Float64,
    balance_share Float64,
    months_on_book Float64,
    full_on_time_share_6 Float64,
    paid_amount_cv_6 Float64,
    origination_pd_logit Float64
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY event_id;

-- The watchlist follows each loan's latest event, origination or repayment.
CREATE MATERIALIZED VIEW IF NOT EXISTS loan_latest_repayment_mv TO loan_latest_score AS
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 + installment_number AS version,
    event_time, processed_at, event_id, model_version, pd, band, exposure,
    expected_loss, grade, sub_grade, addr_state, reason_codes
FROM repayment_scores;

-- Each loan's state at its last repayment event of a month (FINAL keeps the greatest version:
-- event time, then installment number, as in loan_latest_score).
CREATE TABLE IF NOT EXISTS loan_month_state
(
    month Date,
    loan_id String,
    version UInt64,
    event_time DateTime64(3, 'UTC'),
    dpd_bucket LowCardinality(String),
    days_past_due Float64,
    balance Float64,
    pd Float64,
    expected_loss Float64,
    band LowCardinality(String),
    grade LowCardinality(String),
    addr_state LowCardinality(String)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (month, loan_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS loan_month_state_mv TO loan_month_state AS
SELECT
    toStartOfMonth(event_time) AS month, loan_id,
    toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 + installment_number AS version,
    event_time, dpd_bucket, days_past_due,
    outstanding_balance AS balance, pd, expected_loss, band, grade, addr_state
FROM repayment_scores;

-- Delinquency buckets over time: loans and balances per bucket at each month's end.
CREATE VIEW IF NOT EXISTS delinquency_monthly AS
SELECT month, dpd_bucket, count() AS loans, sum(balance) AS balance,
       sum(expected_loss) AS expected_loss
FROM loan_month_state FINAL
GROUP BY month, dpd_bucket;

-- Roll rates: of the loans in a bucket at one month's end, the share in each bucket a month
-- later (loans with events in both months).
CREATE VIEW IF NOT EXISTS roll_rates AS
SELECT
    a.month AS month,
    a.dpd_bucket AS from_bucket,
    b.dpd_bucket AS to_bucket,
    count() AS loans,
    loans / sum(loans) OVER (PARTITION BY a.month, a.dpd_bucket) AS rate
FROM (SELECT month, loan_id, dpd_bucket FROM loan_month_state FINAL) AS a
INNER JOIN (SELECT month, loan_id, dpd_bucket FROM loan_month_state FINAL) AS b
    ON b.loan_id = a.loan_id AND b.month = addMonths(a.month, 1)
GROUP BY month, from_bucket, to_bucket;

-- Current expected loss from each loan's latest score (live PD x balance x LGD once it pays).
CREATE VIEW IF NOT EXISTS expected_loss_current AS
SELECT band, grade, addr_state, count() AS loans, sum(exposure) AS exposure,
       sum(expected_loss) AS expected_loss
FROM loan_latest_score FINAL
GROUP BY band, grade, addr_state;
