-- Webhook endpoints (issue 16): where events are delivered, which types (NULL for every
-- type), the secret deliveries are signed with, and after a rotation the previous one,
-- which also signs until a time.
CREATE TABLE webhook_endpoints (
    id                    uuid        PRIMARY KEY,  -- UUIDv7
    url                   text        NOT NULL,
    description           text        NOT NULL,
    event_types           text[],
    secret                text        NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    disabled_at           timestamptz,
    disabled_reason       text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    revision              integer     NOT NULL  -- a change applies only to the revision it read
);
