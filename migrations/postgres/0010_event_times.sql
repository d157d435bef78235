-- The dashboard's activity by minute (GET /metrics/activity) reads the last hour of the
-- event log by time. A BRIN index keeps one summary per range of blocks: the log is
-- written in time order, so it finds the hour's blocks at a cost per event close to
-- nothing (a B-tree would add an entry to every event's insert).
CREATE INDEX order_events_occurred_at ON order_events USING brin (occurred_at);
