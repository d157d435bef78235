-- Running totals per status, kept by statement-level triggers in the same transaction
-- as every change to orders, so /metrics reads a few dozen rows instead of scanning
-- the table. Each connection writes its own shard (by backend pid), so writers in many
-- instances do not queue on one hot row; /metrics sums the shards.
CREATE TABLE order_stats (
    status        text     NOT NULL,
    shard         smallint NOT NULL,
    orders        bigint   NOT NULL DEFAULT 0,
    processing_ms bigint   NOT NULL DEFAULT 0,  -- sum of completed_at - created_at
    PRIMARY KEY (status, shard)
);

CREATE FUNCTION order_processing_ms(completed_at timestamptz, created_at timestamptz)
    RETURNS bigint LANGUAGE sql IMMUTABLE
    AS $$ SELECT COALESCE((extract(epoch FROM completed_at - created_at) * 1000)::bigint, 0) $$;

INSERT INTO order_stats (status, shard, orders, processing_ms)
SELECT status, 0, count(*), sum(order_processing_ms(completed_at, created_at))
FROM orders GROUP BY status;

-- Adds the rows of `new_rows` and subtracts those of `old_rows`, whichever the
-- operation has. Rows are upserted in status order, so two transactions sharing a
-- shard lock them in the same order and cannot deadlock.
CREATE FUNCTION order_stats_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO order_stats AS s (status, shard, orders, processing_ms)
        SELECT status, my_shard, count(*), sum(order_processing_ms(completed_at, created_at))
        FROM new_rows GROUP BY status ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE
            SET orders = s.orders + EXCLUDED.orders,
                processing_ms = s.processing_ms + EXCLUDED.processing_ms;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO order_stats AS s (status, shard, orders, processing_ms)
        SELECT status, my_shard, sum(n), sum(ms)
        FROM (
            SELECT status, 1 AS n, order_processing_ms(completed_at, created_at) AS ms FROM new_rows
            UNION ALL
            SELECT status, -1, -order_processing_ms(completed_at, created_at) FROM old_rows
        ) changes
        GROUP BY status ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE
            SET orders = s.orders + EXCLUDED.orders,
                processing_ms = s.processing_ms + EXCLUDED.processing_ms;
    ELSE
        INSERT INTO order_stats AS s (status, shard, orders, processing_ms)
        SELECT status, my_shard, -count(*), -sum(order_processing_ms(completed_at, created_at))
        FROM old_rows GROUP BY status ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE
            SET orders = s.orders + EXCLUDED.orders,
                processing_ms = s.processing_ms + EXCLUDED.processing_ms;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_stats_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_stats_apply();
CREATE TRIGGER orders_stats_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_stats_apply();
CREATE TRIGGER orders_stats_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_stats_apply();
