-- The order lifecycle (issue 14): the terminal status Cancelled, with when and why; and
-- the event log, one row per change of an order, written by the transaction of the
-- change.
--
-- A CHECK cannot be altered, so the table is rebuilt, as in 0006. `last_seq` is the
-- `seq` of the order's last event: each change increments it and writes its event
-- with it, so an order's events are numbered 1, 2, 3... without gaps. Orders from
-- before this migration start their log at 1 with their next change.
DROP TRIGGER orders_stats_update;
DROP TRIGGER orders_stats_delete;

CREATE TABLE orders_new (
    id               TEXT    NOT NULL PRIMARY KEY,      -- UUIDv7, hyphenated lowercase: sorts by creation
    user_id          TEXT    NOT NULL,
    item_ids         TEXT    NOT NULL,                  -- JSON array of strings, in the order sent
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    status           TEXT    NOT NULL
                     CHECK (status = 'Pending' OR status = 'Processing' OR status = 'Completed'
                            OR status = 'Failed' OR status = 'Cancelled'),
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claim_token      TEXT,                              -- set while Processing: proves the claim
    lease_expires_at INTEGER,                           -- set while Processing: when rescue may take it back
    available_at     INTEGER NOT NULL,                  -- not claimed before this (retry backoff)
    last_error       TEXT,                              -- why the last attempt failed
    failed_at        INTEGER,                           -- set when dead-lettered
    cancelled_at     INTEGER,                           -- set when cancelled
    cancel_reason    TEXT,
    last_seq         INTEGER NOT NULL DEFAULT 0,        -- seq of the order's last event
    CHECK ((status = 'Completed') = (completed_at IS NOT NULL)),
    CHECK ((status = 'Failed') = (failed_at IS NOT NULL)),
    CHECK ((status = 'Cancelled') = (cancelled_at IS NOT NULL)),
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

CREATE INDEX orders_pending ON orders (available_at, id) WHERE status = 'Pending';
CREATE INDEX orders_processing_lease ON orders (lease_expires_at) WHERE status = 'Processing';
CREATE INDEX orders_user_id ON orders (user_id, id);
CREATE INDEX orders_completed ON orders (id) WHERE status = 'Completed';
CREATE INDEX orders_failed ON orders (id) WHERE status = 'Failed';
CREATE INDEX orders_cancelled ON orders (id) WHERE status = 'Cancelled';

INSERT INTO order_stats (status, orders, processing_ms) VALUES ('Cancelled', 0, 0);

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

-- The event log. `position` orders every event of every order: the one writer commits
-- transactions one after another, so positions become visible in order. It is the
-- rowid, which SQLite takes as one more than the largest in the table; retention never
-- deletes the newest event, so a position is never handed out twice (AUTOINCREMENT
-- would promise the same at the cost of a second table written with every event).
-- Besides its type, an event keeps what a change can change of its order (the rest of
-- the order never changes, and is read from `orders`). Its id is not stored: it is
-- derived from the order, the seq and the time (src/domain/event.rs).
CREATE TABLE order_events (
    position        INTEGER PRIMARY KEY,
    order_id        TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    occurred_at     INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    completed_at    INTEGER,
    failed_at       INTEGER,
    next_attempt_at INTEGER,                            -- while Pending: when it may be claimed
    cancelled_at    INTEGER,
    cancel_reason   TEXT
) STRICT;

-- An order's history, in seq order; and no seq twice.
CREATE UNIQUE INDEX order_events_order_seq ON order_events (order_id, seq);
