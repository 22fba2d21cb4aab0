-- Serving aggregates, kept current by materialized views on scored_events and dead_letters.
-- Sums and counts are SimpleAggregateFunction(sum); PD quantiles keep mergeable states.
-- Read them with sum()/quantilesMerge() grouped by the key, as the dashboards do.

CREATE TABLE IF NOT EXISTS risk_band_minute
(
    minute DateTime('UTC'),
    band LowCardinality(String),
    model_version LowCardinality(String),
    loans SimpleAggregateFunction(sum, UInt64),
    pd_sum SimpleAggregateFunction(sum, Float64),
    pd_quantiles AggregateFunction(quantiles(0.5, 0.9, 0.95, 0.99), Float64),
    exposure SimpleAggregateFunction(sum, Float64),
    expected_loss SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (minute, band, model_version);

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_band_minute_mv TO risk_band_minute AS
SELECT
    toStartOfMinute(event_time) AS minute,
    band,
    model_version,
    count() AS loans,
    sum(pd) AS pd_sum,
    quantilesState(0.5, 0.9, 0.95, 0.99)(pd) AS pd_quantiles,
    sum(exposure) AS exposure,
    sum(expected_loss) AS expected_loss
FROM scored_events
GROUP BY minute, band, model_version;

CREATE TABLE IF NOT EXISTS risk_by_grade_day
(
    day Date,
    grade LowCardinality(String),
    sub_grade LowCardinality(String),
    band LowCardinality(String),
    loans SimpleAggregateFunction(sum, UInt64),
    pd_sum SimpleAggregateFunction(sum, Float64),
    exposure SimpleAggregateFunction(sum, Float64),
    expected_loss SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, grade, sub_grade, band);

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_by_grade_day_mv TO risk_by_grade_day AS
SELECT
    toDate(event_time) AS day,
    grade,
    sub_grade,
    band,
    count() AS loans,
    sum(pd) AS pd_sum,
    sum(exposure) AS exposure,
    sum(expected_loss) AS expected_loss
FROM scored_events
GROUP BY day, grade, sub_grade, band;

CREATE TABLE IF NOT EXISTS risk_by_state_day
(
    day Date,
    addr_state LowCardinality(String),
    band LowCardinality(String),
    loans SimpleAggregateFunction(sum, UInt64),
    pd_sum SimpleAggregateFunction(sum, Float64),
    exposure SimpleAggregateFunction(sum, Float64),
    expected_loss SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, addr_state, band);

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_by_state_day_mv TO risk_by_state_day AS
SELECT
    toDate(event_time) AS day,
    addr_state,
    band,
    count() AS loans,
    sum(pd) AS pd_sum,
    sum(exposure) AS exposure,
    sum(expected_loss) AS expected_loss
FROM scored_events
GROUP BY day, addr_state, band;

-- Each loan's latest score: the row with the greatest version wins on merge (FINAL). The
-- version orders by event time, then installment number (0 for the application), so events
-- with the same timestamp resolve the same way however they were inserted.
CREATE TABLE IF NOT EXISTS loan_latest_score
(
    loan_id String,
    version UInt64,
    event_time DateTime64(3, 'UTC'),
    processed_at DateTime64(6, 'UTC'),
    event_id String,
    model_version LowCardinality(String),
    pd Float64,
    band LowCardinality(String),
    exposure Float64,
    expected_loss Float64,
    grade LowCardinality(String),
    sub_grade LowCardinality(String),
    addr_state LowCardinality(String),
    reason_codes Array(LowCardinality(String))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY loan_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS loan_latest_score_mv TO loan_latest_score AS
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 AS version,
    event_time, processed_at, event_id, model_version, pd, band, exposure,
    expected_loss, grade, sub_grade, addr_state, reason_codes
FROM scored_events;

CREATE VIEW IF NOT EXISTS watchlist AS
SELECT
    loan_id, pd, band, exposure, expected_loss, grade, sub_grade, addr_state, reason_codes,
    event_time, model_version
FROM loan_latest_score FINAL
ORDER BY pd DESC, loan_id;

CREATE TABLE IF NOT EXISTS dead_letters_minute
(
    minute DateTime('UTC'),
    reason LowCardinality(String),
    dead_letters SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (minute, reason);

CREATE MATERIALIZED VIEW IF NOT EXISTS dead_letters_minute_mv TO dead_letters_minute AS
SELECT toStartOfMinute(received_at) AS minute, reason, count() AS dead_letters
FROM dead_letters
GROUP BY minute, reason;
