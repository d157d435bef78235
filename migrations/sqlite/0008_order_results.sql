-- A real processing step (issue 15): what the processor answered about its work, a
-- JSON object of at most 16 KB kept as its text, on a Completed order. The order.completed
-- event reads it from here (a Completed order never changes again), so it is stored once.
ALTER TABLE orders ADD COLUMN result TEXT;
