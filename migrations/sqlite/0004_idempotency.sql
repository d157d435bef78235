-- Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field"): the first
-- answer to a keyed POST /orders, written in the same transaction as its order.
CREATE TABLE idempotency_keys (
    scope       TEXT    NOT NULL,       -- the token's user; '' with authentication off
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,       -- SHA-256 of the parsed request
    order_id    TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;

-- Pruning removes keys past their time to live.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
