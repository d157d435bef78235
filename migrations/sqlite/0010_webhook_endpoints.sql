-- Webhook endpoints (issue 16): where events are delivered, which types (a JSON array;
-- NULL for every type), the secret deliveries are signed with, and after a rotation the
-- previous one, which also signs until a time.
CREATE TABLE webhook_endpoints (
    id                    TEXT    PRIMARY KEY,     -- UUIDv7
    url                   TEXT    NOT NULL,
    description           TEXT    NOT NULL,
    event_types           TEXT,
    secret                TEXT    NOT NULL,
    previous_secret       TEXT,
    previous_secret_until INTEGER,                 -- Unix milliseconds
    disabled_at           INTEGER,
    disabled_reason       TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    revision              INTEGER NOT NULL  -- a change applies only to the revision it read
);
