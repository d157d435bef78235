-- Cheaper writes (BENCHMARKS.md). `orders` and `order_stats` become WITHOUT ROWID
-- tables, stored in the order of their primary keys, so a write updates one b-tree
-- fewer and a read by id is one lookup. New orders are counted in `order_stats` by
-- the store, once per status per transaction, in the transaction that inserts them,
-- rather than by a trigger run once per row; changes and deletions keep their
-- triggers. (Anything that inserts orders from outside the service must add to
-- `order_stats` in the same transaction.)
DROP TRIGGER orders_stats_insert;
DROP TRIGGER orders_stats_update;
DROP TRIGGER orders_stats_delete;

CREATE TABLE orders_new (
    id               TEXT    NOT NULL PRIMARY KEY,      -- UUIDv7, hyphenated lowercase: sorts by creation
    user_id          TEXT    NOT NULL,
    item_ids         TEXT    NOT NULL,                  -- JSON array of strings, in the order sent
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    status           TEXT    NOT NULL
                     CHECK (status IN ('Pending', 'Processing', 'Completed', 'Failed')),
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claim_token      TEXT,                              -- set while Processing: proves the claim
    lease_expires_at INTEGER,                           -- set while Processing: when rescue may take it back
    available_at     INTEGER NOT NULL,                  -- not claimed before this (retry backoff)
    last_error       TEXT,                              -- why the last attempt failed
    failed_at        INTEGER,                           -- set when dead-lettered
    CHECK ((status = 'Completed') = (completed_at IS NOT NULL)),
    CHECK ((status = 'Failed') = (failed_at IS NOT NULL)),
    CHECK ((status = 'Processing') = (claim_token IS NOT NULL AND lease_expires_at IS NOT NULL))
) STRICT, WITHOUT ROWID;

INSERT INTO orders_new (id, user_id, item_ids, amount_cents, status, created_at, completed_at,
                        attempts, claim_token, lease_expires_at, available_at, last_error,
                        failed_at)
SELECT id, user_id, item_ids, amount_cents, status, created_at, completed_at,
       attempts, claim_token, lease_expires_at, available_at, last_error, failed_at
FROM orders;

DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;

-- Claiming takes Pending orders that are due, oldest due first.
CREATE INDEX orders_pending ON orders (available_at, id) WHERE status = 'Pending';
-- Lease rescue looks only at Processing orders, by expiry.
CREATE INDEX orders_processing_lease ON orders (lease_expires_at) WHERE status = 'Processing';
-- Listings: newest first, filtered by status or by user.
CREATE INDEX orders_status_id ON orders (status, id);
CREATE INDEX orders_user_id ON orders (user_id, id);

CREATE TABLE order_stats_new (
    status        TEXT    NOT NULL PRIMARY KEY,
    orders        INTEGER NOT NULL,
    processing_ms INTEGER NOT NULL            -- sum of completed_at - created_at
) STRICT, WITHOUT ROWID;
INSERT INTO order_stats_new (status, orders, processing_ms)
SELECT status, orders, processing_ms FROM order_stats;
DROP TABLE order_stats;
ALTER TABLE order_stats_new RENAME TO order_stats;

CREATE TRIGGER orders_stats_update AFTER UPDATE ON orders
WHEN OLD.status IS NOT NEW.status OR OLD.completed_at IS NOT NEW.completed_at
  OR OLD.created_at IS NOT NEW.created_at
BEGIN
    UPDATE order_stats
    SET orders = orders - 1,
        processing_ms = processing_ms - COALESCE(OLD.completed_at - OLD.created_at, 0)
    WHERE status = OLD.status;
    UPDATE order_stats
    SET orders = orders + 1,
        processing_ms = processing_ms + COALESCE(NEW.completed_at - NEW.created_at, 0)
    WHERE status = NEW.status;
END;

CREATE TRIGGER orders_stats_delete AFTER DELETE ON orders BEGIN
    UPDATE order_stats
    SET orders = orders - 1,
        processing_ms = processing_ms - COALESCE(OLD.completed_at - OLD.created_at, 0)
    WHERE status = OLD.status;
END;
