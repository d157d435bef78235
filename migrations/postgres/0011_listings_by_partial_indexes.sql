-- One index entry fewer for every new order and every claim (BENCHMARKS.md), as
-- SQLite's migration 6 did: `orders_status_id` holds every order, so each insert adds
-- an entry to it and each change of status (never a HOT update, since status is
-- indexed) adds another; a completion's entry now goes to `orders_completed`.
-- Listings by status read:
--   Pending:    the queue (orders_pending), which holds only orders waiting;
--   Processing: the lease index (orders_processing_lease), only orders in flight;
--   Completed, Failed and Cancelled: an index of their own, by id, which an order
--   enters once, when it finishes.
-- The first two keep orders in another order than by id, so a page of them is sorted:
-- that costs what the queue holds, which is small unless work piles up. A user's
-- listings read the user index, as before.
--
-- The new indexes are built before the old one goes, inside this migration's
-- transaction: writes to `orders` wait while they are built (0.9 s for a million
-- orders on the machine of BENCHMARKS.md), and the drop waits for queries on `orders`
-- that are running. Instances of the previous release that are running meanwhile keep
-- answering correctly, but their listings bind the status, and once PostgreSQL settles
-- on a generic plan for them it cannot use these indexes: a listing of a rare status
-- may then read much of the table. Such an instance cannot start again on the
-- migrated database (it refuses a migration it does not know). README, "Upgrading".
CREATE INDEX orders_completed ON orders (id) WHERE status = 'Completed';
CREATE INDEX orders_failed ON orders (id) WHERE status = 'Failed';
CREATE INDEX orders_cancelled ON orders (id) WHERE status = 'Cancelled';
DROP INDEX orders_status_id;
