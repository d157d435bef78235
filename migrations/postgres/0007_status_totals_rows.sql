-- A running-totals row for every status, so that the store can check at start-up that
-- no status lacks one (SQLite's totals are updated in place, never created: a status
-- without a row would count into nothing). The triggers still upsert per shard.
INSERT INTO order_stats (status, shard, orders, processing_ms)
VALUES ('Pending', 0, 0, 0), ('Processing', 0, 0, 0), ('Completed', 0, 0, 0), ('Failed', 0, 0, 0)
ON CONFLICT (status, shard) DO NOTHING;
