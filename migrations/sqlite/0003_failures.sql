-- Failed attempts: retries after a backoff (available_at), the last error, and the
-- dead-letter status Failed. SQLite cannot change a CHECK constraint in place, so the
-- table is rebuilt; the running totals are recomputed at the end.
DROP TRIGGER orders_stats_insert;
DROP TRIGGER orders_stats_update;
DROP TRIGGER orders_stats_delete;

CREATE TABLE orders_new (
    id               TEXT    NOT NULL PRIMARY KEY,
    user_id          TEXT    NOT NULL,
    item_ids         TEXT    NOT NULL,
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    status           TEXT    NOT NULL
                     CHECK (status IN ('Pending', 'Processing', 'Completed', 'Failed')),
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claim_token      TEXT,
    lease_expires_at INTEGER,
    available_at     INTEGER NOT NULL,                  -- not claimed before this (retry backoff)
    last_error       TEXT,                              -- why the last attempt failed
    failed_at        INTEGER,                           -- set when dead-lettered
    CHECK ((status = 'Completed') = (completed_at IS NOT NULL)),
    CHECK ((status = 'Failed') = (failed_at IS NOT NULL)),
    CHECK ((status = 'Processing') = (claim_token IS NOT NULL AND lease_expires_at IS NOT NULL))
) STRICT;

INSERT INTO orders_new (id, user_id, item_ids, amount_cents, status, created_at, completed_at,
                        attempts, claim_token, lease_expires_at, available_at)
SELECT id, user_id, item_ids, amount_cents, status, created_at, completed_at,
       attempts, claim_token, lease_expires_at, created_at
FROM orders;

DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;

-- Claiming takes Pending orders that are due, oldest due first.
CREATE INDEX orders_pending ON orders (available_at, id) WHERE status = 'Pending';
CREATE INDEX orders_processing_lease ON orders (lease_expires_at) WHERE status = 'Processing';
-- Listings: newest first, filtered by status or by user.
CREATE INDEX orders_status_id ON orders (status, id);
CREATE INDEX orders_user_id ON orders (user_id, id);

INSERT OR IGNORE INTO order_stats (status, orders, processing_ms) VALUES ('Failed', 0, 0);
UPDATE order_stats SET
    orders = (SELECT count(*) FROM orders o WHERE o.status = order_stats.status),
    processing_ms = (SELECT COALESCE(sum(o.completed_at - o.created_at), 0)
                     FROM orders o WHERE o.status = order_stats.status);

CREATE TRIGGER orders_stats_insert AFTER INSERT ON orders BEGIN
    UPDATE order_stats
    SET orders = orders + 1,
        processing_ms = processing_ms + COALESCE(NEW.completed_at - NEW.created_at, 0)
    WHERE status = NEW.status;
END;

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
