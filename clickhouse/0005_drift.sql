-- Drift checks: one row per monitored quantity per `riskctl drift` run, written by the command.
-- kind is 'feature' (a model input), 'score' (the PD) or 'band_mix' (share of loans per risk
-- band). psi compares the live window (by event time) with the training reference stored in
-- the model card; status is 'ok' below watch_threshold, 'watch' from it, 'alert' from
-- alert_threshold. bins, reference_shares and live_shares hold the histogram behind the index
-- (the last bin of a feature is its missing share).

CREATE TABLE IF NOT EXISTS drift_psi
(
    computed_at DateTime64(3, 'UTC'),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    model_version LowCardinality(String),
    kind LowCardinality(String),
    feature LowCardinality(String),
    psi Float64,
    status LowCardinality(String),
    live_rows UInt64,
    watch_threshold Float64,
    alert_threshold Float64,
    bins Array(String),
    reference_shares Array(Float64),
    live_shares Array(Float64)
)
ENGINE = MergeTree
ORDER BY (feature, computed_at);
