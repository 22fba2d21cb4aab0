-- Crash consistency for the sink. A ClickHouse INSERT commits the target table's part and each
-- materialized view's part separately, so a process killed mid-insert can leave rows in a table
-- that its views never counted. The writer therefore records every insert it is about to make in
-- sink_journal first (one part: all or nothing), inserts each table with a deduplication token
-- taken from the journal, and drops the journal entry after the last table. An entry still
-- present when a writer connects is replayed with the same tokens: tables and views that
-- already hold their block skip it, the ones a crash left out get it.
--
-- The window keeps the tokens of each table's last 1000 inserts (the replay happens when the
-- next run's writers connect, long before 1000 more inserts). Every table the writer inserts
-- into and every materialized view target fed by them needs it: a view without it would count
-- a replayed block twice (tests/test_crash_consistency.py checks every view target).

ALTER TABLE raw_events MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE scored_events MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE dead_letters MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE repayment_scores MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE risk_band_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE risk_segment_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE risk_by_grade_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE risk_by_state_day MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE loan_latest_score MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE dead_letters_minute MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE loan_month_state MODIFY SETTING non_replicated_deduplication_window = 1000;

-- One partition per journal entry, so completing an entry is a cheap DROP PARTITION. The body
-- is the rows for one target table as an Arrow IPC stream (already compressed).
CREATE TABLE IF NOT EXISTS sink_journal
(
    token String,
    target LowCardinality(String),
    rows UInt32,
    body String CODEC(NONE),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY token
ORDER BY target;
