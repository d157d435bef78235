-- Cheaper writes (BENCHMARKS.md): a new order goes into three b-trees (the table, the
-- queue, the user index) instead of four, and claiming or completing an order no
-- longer moves it between two places in an index of every order by status.
--
-- Listings by status read, instead:
--   Pending:    the queue (orders_pending), which holds only orders waiting;
--   Processing: the lease index (orders_processing_lease), only orders in flight;
--   Completed and Failed: an index of their own, by id, which an order enters once,
--   when it finishes.
-- The first two hold orders in another order than by id, so a page of them is sorted:
-- that costs what the queue holds, which is small unless work is piling up.
DROP INDEX orders_status_id;
CREATE INDEX orders_completed ON orders (id) WHERE status = 'Completed';
CREATE INDEX orders_failed ON orders (id) WHERE status = 'Failed';
