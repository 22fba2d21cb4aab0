-- Tables written by every micro-batch keep their new parts in ClickHouse's compact format
-- (all columns in one file) until merges grow them past 128 MiB. A batch of tens of thousands
-- of scored rows otherwise becomes a wide part with two files per column (scored_events has
-- over fifty), which made inserting it take twice as long.

ALTER TABLE raw_events MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE scored_events MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE dead_letters MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE repayment_scores MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE loan_latest_score MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE loan_month_state MODIFY SETTING min_bytes_for_wide_part = 134217728;
