-- Risk per minute and segment, for the business dashboard. Every filter the dashboard offers
-- (band, model version, grade, state) is a key of this table, so each panel reads one small
-- pre-aggregated table whatever the analyst selects, instead of scanning scored_events.
-- Read it with sum() and quantilesMerge() grouped by what the panel needs.

CREATE TABLE IF NOT EXISTS risk_segment_minute
(
    minute DateTime('UTC'),
    band LowCardinality(String),
    model_version LowCardinality(String),
    grade LowCardinality(String),
    addr_state LowCardinality(String),
    loans SimpleAggregateFunction(sum, UInt64),
    pd_sum SimpleAggregateFunction(sum, Float64),
    pd_quantiles AggregateFunction(quantiles(0.5, 0.9, 0.95, 0.99), Float64),
    exposure SimpleAggregateFunction(sum, Float64),
    expected_loss SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (minute, band, model_version, grade, addr_state);

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_segment_minute_mv TO risk_segment_minute AS
SELECT
    toStartOfMinute(event_time) AS minute,
    band,
    model_version,
    grade,
    addr_state,
    count() AS loans,
    sum(pd) AS pd_sum,
    quantilesState(0.5, 0.9, 0.95, 0.99)(pd) AS pd_quantiles,
    sum(exposure) AS exposure,
    sum(expected_loss) AS expected_loss
FROM scored_events
GROUP BY minute, band, model_version, grade, addr_state;

-- Rows scored before this migration existed. Migrations run before any writer starts (the
-- compose init service, or `riskctl run` itself on the embedded store), so no insert lands
-- between the view's creation and this backfill to be counted twice. Stop the workers before
-- migrating a live server by hand.
INSERT INTO risk_segment_minute
SELECT
    toStartOfMinute(event_time) AS minute,
    band,
    model_version,
    grade,
    addr_state,
    count() AS loans,
    sum(pd) AS pd_sum,
    quantilesState(0.5, 0.9, 0.95, 0.99)(pd) AS pd_quantiles,
    sum(exposure) AS exposure,
    sum(expected_loss) AS expected_loss
FROM scored_events
GROUP BY minute, band, model_version, grade, addr_state;
