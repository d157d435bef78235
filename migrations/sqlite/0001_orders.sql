-- The orders table is both the system of record and the work queue.
-- Times are milliseconds since the Unix epoch, UTC; money is integer cents.
CREATE TABLE orders (
    id               TEXT    NOT NULL PRIMARY KEY,      -- UUIDv7, hyphenated lowercase: sorts by creation
    user_id          TEXT    NOT NULL,
    item_ids         TEXT    NOT NULL,                  -- JSON array of strings, in the order sent
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    status           TEXT    NOT NULL CHECK (status IN ('Pending', 'Processing', 'Completed')),
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claim_token      TEXT,                              -- set while Processing: proves the claim
    lease_expires_at INTEGER,                           -- set while Processing: when rescue may take it back
    CHECK ((status = 'Completed') = (completed_at IS NOT NULL)),
    CHECK ((status = 'Processing') = (claim_token IS NOT NULL AND lease_expires_at IS NOT NULL))
) STRICT;

-- Claiming takes the oldest Pending orders; this index holds only those.
CREATE INDEX orders_pending ON orders (id) WHERE status = 'Pending';
-- Lease rescue looks only at Processing orders, by expiry.
CREATE INDEX orders_processing_lease ON orders (lease_expires_at) WHERE status = 'Processing';
-- Metrics group by status; the covering index keeps that off the table's pages.
CREATE INDEX orders_status ON orders (status, created_at, completed_at);
