-- Operational figures written by the dataflow's sink, for the ops dashboard.

-- When the source handed each event over: the Kafka message timestamp (broker append or
-- producer create time), or the time a file line was read. Latency from it to processed_at is
-- the pipeline's own delay; from event_time it is the end-to-end delay.
ALTER TABLE scored_events ADD COLUMN IF NOT EXISTS source_time DateTime64(3, 'UTC') AFTER received_at;

-- One row per batch a sink worker wrote.
CREATE TABLE IF NOT EXISTS ops_batches
(
    written_at DateTime64(3, 'UTC'),
    flow_id LowCardinality(String),
    worker UInt16,
    source LowCardinality(String),
    events_in UInt32,
    scored UInt32,
    dead_lettered UInt32,
    duplicates UInt32,
    write_ms Float64,
    latency_p50_ms Float64,
    latency_p95_ms Float64,
    latency_p99_ms Float64,
    latency_max_ms Float64
)
ENGINE = MergeTree
ORDER BY (written_at, worker)
TTL toDateTime(written_at) + INTERVAL 30 DAY;

-- Consumer lag per partition: the partition's high watermark minus the flow's next offset.
CREATE TABLE IF NOT EXISTS ops_consumer_lag
(
    measured_at DateTime64(3, 'UTC'),
    flow_id LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    next_offset Int64,
    high_watermark Int64,
    lag Int64
)
ENGINE = MergeTree
ORDER BY (topic, partition, measured_at)
TTL toDateTime(measured_at) + INTERVAL 30 DAY;
