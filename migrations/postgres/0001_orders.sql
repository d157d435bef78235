-- The orders table is both the system of record and the work queue.
-- Money is integer cents; times are timestamptz (written at millisecond precision).
CREATE TABLE orders (
    id               uuid        PRIMARY KEY,           -- UUIDv7: sorts by creation
    user_id          text        NOT NULL,
    item_ids         text[]      NOT NULL,              -- in the order sent
    amount_cents     bigint      NOT NULL CHECK (amount_cents > 0),
    status           text        NOT NULL CHECK (status IN ('Pending', 'Processing', 'Completed')),
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claim_token      uuid,                              -- set while Processing: proves the claim
    lease_expires_at timestamptz,                       -- set while Processing: when rescue may take it back
    CHECK ((status = 'Completed') = (completed_at IS NOT NULL)),
    CHECK ((status = 'Processing') = (claim_token IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- Claiming takes the oldest Pending orders; this index holds only those.
CREATE INDEX orders_pending ON orders (id) WHERE status = 'Pending';
-- Lease rescue looks only at Processing orders, by expiry.
CREATE INDEX orders_processing_lease ON orders (lease_expires_at) WHERE status = 'Processing';
-- Metrics group by status.
CREATE INDEX orders_status ON orders (status);

-- Wake idle workers in every instance when work appears: a new order, or one put
-- back in the queue (released or rescued). NOTIFY is delivered at commit, and
-- identical notifications in one transaction are folded into one.
CREATE FUNCTION orders_notify_new_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_processor_new_work', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_inserted AFTER INSERT ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_notify_new_work();

CREATE TRIGGER orders_requeued AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (NEW.status = 'Pending' AND OLD.status <> 'Pending')
    EXECUTE FUNCTION orders_notify_new_work();
