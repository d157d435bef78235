-- Webhook deliveries (issue 16): one row per event owed to an endpoint, written with
-- the webhooks consumer's move along the log. An endpoint's health: its last delivery,
-- and since when every attempt has failed (disabled after WEBHOOK_DISABLE_AFTER).
ALTER TABLE webhook_endpoints ADD COLUMN last_delivered_at timestamptz;
ALTER TABLE webhook_endpoints ADD COLUMN failing_since timestamptz;

CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY,  -- UUIDv7: sorts by the time it was owed
    endpoint_id      uuid        NOT NULL,     -- removed with its endpoint
    event_position   bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    order_id         uuid        NOT NULL,
    seq              integer     NOT NULL,
    type             text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    status           text        NOT NULL,     -- pending | delivered | failed
    attempts         integer     NOT NULL,
    -- Pending: when it may be claimed (while in flight, its claim's lease end, so a
    -- crashed sender's delivery comes due again by itself); NULL while an earlier event
    -- of its order is still owed to the same endpoint.
    next_attempt_at  timestamptz,
    claim_token      uuid,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz
);
-- Claims: each endpoint's due deliveries, soonest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending' AND next_attempt_at IS NOT NULL;
-- Per-order order (the next of an order's events for an endpoint), and retention's
-- check that no delivery still needs an event.
CREATE INDEX webhook_deliveries_owed ON webhook_deliveries (order_id, endpoint_id, seq)
    WHERE status = 'pending';
-- Operators' listings, newest first, with and without a status.
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (endpoint_id, status, id);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
