-- Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field"): the first
-- answer to a keyed POST /orders, written in the same transaction as its order.
CREATE TABLE idempotency_keys (
    scope       text        NOT NULL,   -- the token's user; '' with authentication off
    key         text        NOT NULL,
    fingerprint text        NOT NULL,   -- SHA-256 of the parsed request
    order_id    uuid        NOT NULL,
    status      smallint    NOT NULL,
    body        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Pruning removes keys past their time to live.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
