-- Which origination model kind scored each row (applicant or priced), and the text of each
-- reason code beside the code, taken from the scoring model's card. The watchlist shows the
-- texts; the behavioural model's reasons have no texts, so its rows show their codes.

ALTER TABLE scored_events ADD COLUMN IF NOT EXISTS model_kind LowCardinality(String) DEFAULT '' AFTER model_version;
ALTER TABLE scored_events ADD COLUMN IF NOT EXISTS reason_texts Array(String) AFTER reason_codes;
ALTER TABLE loan_latest_score ADD COLUMN IF NOT EXISTS model_kind LowCardinality(String) DEFAULT '';
ALTER TABLE loan_latest_score ADD COLUMN IF NOT EXISTS reason_texts Array(String);

-- Recreated to carry the new columns: a materialized view's query cannot be altered in place.
DROP VIEW IF EXISTS loan_latest_score_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS loan_latest_score_mv TO loan_latest_score AS
SELECT
    loan_id, toUInt64(toUnixTimestamp64Milli(event_time)) * 1000 AS version,
    event_time, processed_at, event_id, model_version, model_kind, pd, band, exposure,
    expected_loss, grade, sub_grade, addr_state, reason_codes, reason_texts
FROM scored_events;

CREATE OR REPLACE VIEW watchlist AS
SELECT
    loan_id, pd, band, exposure, expected_loss, grade, sub_grade, addr_state, reason_codes,
    if(empty(reason_texts), arrayMap(c -> toString(c), reason_codes), reason_texts)
        AS reason_texts,
    event_time, model_version, model_kind
FROM loan_latest_score FINAL
ORDER BY pd DESC, loan_id;
