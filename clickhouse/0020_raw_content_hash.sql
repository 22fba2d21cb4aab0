-- Each raw event's content hash, so that a later event reusing its event_id with other content
-- is told apart from a repeat of the same event (a conflicting duplicate is dead-lettered, a
-- repeat skipped). ClickHouse computes it from the payload at insert, and for rows stored
-- before this migration when they are read, so the writer never hashes the usual new event.

ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS content_hash FixedString(32) DEFAULT SHA256(payload);
