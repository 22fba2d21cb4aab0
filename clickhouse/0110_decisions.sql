-- Every answer of the decision service (`riskctl serve`), for audit: the request as received,
-- the answer as sent, the policy and model versions behind it and how long it took. Written in
-- batches by the service's background writer; a batch retried after a store outage carries
-- the same insert token, and the ReplacingMergeTree key collapses any repeat that slips in.

CREATE TABLE IF NOT EXISTS decisions
(
    decision_id String,
    decided_at DateTime64(6, 'UTC'),
    event_id String,
    loan_id String,
    borrower_id String,
    event_time DateTime64(3, 'UTC'),
    outcome LowCardinality(String),
    pd_lifetime Float64,
    band LowCardinality(String),
    rules_fired Array(LowCardinality(String)),
    reason_codes Array(LowCardinality(String)),
    reason_texts Array(String),
    model_version LowCardinality(String),
    model_kind LowCardinality(String),
    policy_version LowCardinality(String),
    idempotency_key String,
    latency_us UInt32,
    request String,
    response String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(decided_at)
ORDER BY decision_id
SETTINGS min_bytes_for_wide_part = 134217728;
