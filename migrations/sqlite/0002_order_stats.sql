-- Running totals per status, kept by triggers in the same transaction as every change
-- to orders, so /metrics reads three rows instead of scanning the table.
-- (SQLite has one writer at a time, so one row per status is no bottleneck.)
CREATE TABLE order_stats (
    status        TEXT    NOT NULL PRIMARY KEY,
    orders        INTEGER NOT NULL,
    processing_ms INTEGER NOT NULL            -- sum of completed_at - created_at
) STRICT;

INSERT INTO order_stats (status, orders, processing_ms)
SELECT s.status,
       (SELECT count(*) FROM orders o WHERE o.status = s.status),
       (SELECT COALESCE(sum(o.completed_at - o.created_at), 0) FROM orders o WHERE o.status = s.status)
FROM (SELECT 'Pending' AS status UNION ALL SELECT 'Processing' UNION ALL SELECT 'Completed') s;

CREATE TRIGGER orders_stats_insert AFTER INSERT ON orders BEGIN
    UPDATE order_stats
    SET orders = orders + 1,
        processing_ms = processing_ms + COALESCE(NEW.completed_at - NEW.created_at, 0)
    WHERE status = NEW.status;
END;

CREATE TRIGGER orders_stats_update AFTER UPDATE ON orders
WHEN OLD.status IS NOT NEW.status OR OLD.completed_at IS NOT NEW.completed_at
  OR OLD.created_at IS NOT NEW.created_at
BEGIN
    UPDATE order_stats
    SET orders = orders - 1,
        processing_ms = processing_ms - COALESCE(OLD.completed_at - OLD.created_at, 0)
    WHERE status = OLD.status;
    UPDATE order_stats
    SET orders = orders + 1,
        processing_ms = processing_ms + COALESCE(NEW.completed_at - NEW.created_at, 0)
    WHERE status = NEW.status;
END;

CREATE TRIGGER orders_stats_delete AFTER DELETE ON orders BEGIN
    UPDATE order_stats
    SET orders = orders - 1,
        processing_ms = processing_ms - COALESCE(OLD.completed_at - OLD.created_at, 0)
    WHERE status = OLD.status;
END;
