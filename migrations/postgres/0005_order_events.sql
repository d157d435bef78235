-- The order lifecycle (issue 14): the terminal status Cancelled, with when and why; and
-- the event log, one row per change of an order, written by the statement of the
-- change (a data-modifying WITH), so in its transaction.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('Pending', 'Processing', 'Completed', 'Failed', 'Cancelled'));

ALTER TABLE orders
    ADD COLUMN cancelled_at  timestamptz,               -- set when cancelled
    ADD COLUMN cancel_reason text,
    ADD COLUMN last_seq      integer NOT NULL DEFAULT 0, -- seq of the order's last event
    ADD COLUMN event_xid     xid8;                       -- transaction of the order's last event
ALTER TABLE orders ADD CONSTRAINT orders_cancelled_at_check
    CHECK ((status = 'Cancelled') = (cancelled_at IS NOT NULL));

-- A position must be safe to page by: a reader that has seen position p must never
-- later find a smaller one committed. Positions taken from a sequence are not: two
-- transactions commit in any order. So a position is the writing transaction's id
-- (xid8, which never wraps) shifted left 12 bits, plus the event's place in its
-- statement (each transaction writes its events in one statement, of at most 4,095:
-- the store bounds every batch below that). A reader reads only positions below the
-- oldest transaction still running (`pg_snapshot_xmin`): every transaction below it
-- has ended, and every transaction that has not will take a larger position. (A bare
-- expression, so the planner inlines it: a condition here would make it a function
-- call per event.)
CREATE FUNCTION order_event_position(n bigint) RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ SELECT (pg_current_xact_id()::text::bigint << 12) + n $$;

-- The first position no reader may pass yet.
CREATE FUNCTION order_event_horizon() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 12 $$;

-- Positions order each order's events as its seq does only if each change of an order
-- is written by a later transaction (a larger xid) than the one before. The statements
-- that change orders ensure it (a change re-checks the order's status after waiting
-- for its row); this refuses, with a serialization failure to retry, the change that
-- would break it.
CREATE FUNCTION orders_event_out_of_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order % changed by an older transaction than its last event', NEW.id
        USING ERRCODE = 'serialization_failure';
END;
$$;
CREATE TRIGGER orders_event_order BEFORE UPDATE ON orders
    FOR EACH ROW WHEN (NEW.event_xid < OLD.event_xid)
    EXECUTE FUNCTION orders_event_out_of_order();

-- Besides its type, an event keeps what a change can change of its order (the rest of
-- the order never changes, and is read from `orders`). Its id is not stored: it is
-- derived from the order, the seq and the time (src/domain/event.rs).
CREATE TABLE order_events (
    position        bigint      PRIMARY KEY,
    order_id        uuid        NOT NULL,
    seq             integer     NOT NULL,
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    status          text        NOT NULL,
    attempts        integer     NOT NULL,
    last_error      text,
    completed_at    timestamptz,
    failed_at       timestamptz,
    next_attempt_at timestamptz,                 -- while Pending: when it may be claimed
    cancelled_at    timestamptz,
    cancel_reason   text,
    UNIQUE (order_id, seq)
);

-- Wake readers of the log in every instance when events commit (folded into one
-- notification per transaction). Only when a row went in: a statement trigger fires
-- for zero rows too, and a NOTIFY makes every idle poll (a claim that found nothing) a
-- transaction that queues on the cluster-wide notification lock at commit.
CREATE FUNCTION order_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('order_processor_events', '');
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER order_events_inserted AFTER INSERT ON order_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_events_notify();
