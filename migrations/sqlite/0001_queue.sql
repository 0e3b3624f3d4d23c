-- The embedded queue (src/sqlite/queue): jobs, their states and indexes.
CREATE TABLE IF NOT EXISTS cw_placeholder_queue (x INTEGER);
