-- The keys each write stored, by the writer that stored them and when (the server's clock).
-- Every writer keeps an exact in-memory set of the key hashes its target tables hold (loaded
-- from the tables when it connects, flows/seen_keys.py) and asks the store only about keys
-- found in it. What other writers stored since is read from here before each write: rows of
-- other writers stamped since the last read, less a margin for inserts still in flight.
--
-- Written through the journal like the tables, and first of an entry's tables, so a key is
-- here before any table holds it. Ordered by writer, then time: a writer's read skips its own
-- rows and every other writer's older ones by the primary key. Rows are needed only until
-- every running writer has read them; a writer that has not read for an hour reloads from
-- the tables, so a day's rows are plenty.

CREATE TABLE IF NOT EXISTS stored_keys
(
    target LowCardinality(String),
    key_hash UInt64,
    writer UInt64,
    stored_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (writer, stored_at)
TTL toDateTime(stored_at) + INTERVAL 1 DAY
SETTINGS non_replicated_deduplication_window = 1000;
