-- What spans queues in the embedded backend (src/sqlite): queue names, event log, sessions,
-- gates and cron marks, rate logs.
CREATE TABLE IF NOT EXISTS cw_placeholder_backend (x INTEGER);
