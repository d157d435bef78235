-- Failed attempts: retries after a backoff (available_at), the last error, and the
-- dead-letter status Failed.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('Pending', 'Processing', 'Completed', 'Failed'));

ALTER TABLE orders
    ADD COLUMN available_at timestamptz,                -- not claimed before this (retry backoff)
    ADD COLUMN last_error   text,                       -- why the last attempt failed
    ADD COLUMN failed_at    timestamptz;                -- set when dead-lettered
UPDATE orders SET available_at = created_at;
ALTER TABLE orders ALTER COLUMN available_at SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_failed_at_check
    CHECK ((status = 'Failed') = (failed_at IS NOT NULL));

-- Claiming takes Pending orders that are due, oldest due first.
DROP INDEX orders_pending;
CREATE INDEX orders_pending ON orders (available_at, id) WHERE status = 'Pending';
-- Listings: newest first, filtered by status or by user.
DROP INDEX orders_status;
CREATE INDEX orders_status_id ON orders (status, id);
CREATE INDEX orders_user_id ON orders (user_id, id);
