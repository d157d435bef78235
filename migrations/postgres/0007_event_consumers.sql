-- Readers of the event log that must see every event (the NATS relay, issue 16): how
-- far each got, and which instance holds it (one at a time, under a lease). Retention
-- keeps the events after the smallest position of a consumer held lately.
CREATE TABLE event_consumers (
    name             text        PRIMARY KEY,
    position         bigint      NOT NULL,
    holder           uuid        NOT NULL,
    lease_expires_at timestamptz NOT NULL
);
