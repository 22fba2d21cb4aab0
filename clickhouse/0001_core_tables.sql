-- Core tables: raw events, scored events and dead letters.
-- The dataflow's sink writes each event once (it skips keys already present), and the
-- ReplacingMergeTree keys make any duplicate that still slips in collapse on merge.

CREATE TABLE IF NOT EXISTS raw_events
(
    event_id String,
    loan_id String,
    event_type LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    received_at DateTime64(6, 'UTC'),
    origin String,
    payload String
)
ENGINE = ReplacingMergeTree
ORDER BY event_id;

CREATE TABLE IF NOT EXISTS scored_events
(
    event_id String,
    loan_id String,
    borrower_id String,
    event_type LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    received_at DateTime64(6, 'UTC'),
    processed_at DateTime64(6, 'UTC'),
    model_version LowCardinality(String),
    pd Float64,
    band LowCardinality(String),
    exposure Float64,
    lgd Float64,
    expected_loss Float64,
    grade LowCardinality(String),
    sub_grade LowCardinality(String),
    addr_state LowCardinality(String),
    term_months UInt8,
    int_rate Float64,
    annual_inc Float64,
    reason_codes Array(LowCardinality(String)),
    loan_amount_log Float64,
    annual_income_log Float64,
    income_zero Float64,
    loan_to_income Float64,
    installment_to_income Float64,
    debt_to_income Float64,
    revolving_utilization Float64,
    total_utilization Float64,
    installment_utilization Float64,
    interest_rate Float64,
    sub_grade_rank Float64,
    term_60 Float64,
    delinquencies_2y Float64,
    accounts_delinquent Float64,
    delinquent_amount_log Float64,
    inquiries_6m Float64,
    inquiries_12m Float64,
    finance_inquiries Float64,
    installment_opened_6m Float64,
    installment_opened_12m Float64,
    installment_opened_24m Float64,
    installment_accounts Float64,
    employment_years Float64,
    employment_unknown Float64,
    income_stability Float64,
    income_verified Float64
)
ENGINE = ReplacingMergeTree(processed_at)
ORDER BY event_id;

CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id String,
    received_at DateTime64(6, 'UTC'),
    origin String,
    reason LowCardinality(String),
    detail String,
    payload String,
    payload_base64 String
)
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id;
