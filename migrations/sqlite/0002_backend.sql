-- What spans queues in the embedded backend (src/sqlite): event log, sessions, gates and cron
-- marks, rate logs. (The queue names table is the queue's, 0001_queue.sql.)

-- The event log (src/sqlite/events.rs): ids "<ms>-<seq>" as Redis stream ids, strictly
-- increasing across every process on the file; `n` numbers the entries without gaps so the cap
-- trims the oldest by a range of `n`.
CREATE TABLE IF NOT EXISTS cw_events (
    n      INTEGER PRIMARY KEY,
    id_ms  INTEGER NOT NULL,
    id_seq INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    owner  TEXT,
    data   TEXT    NOT NULL,
    UNIQUE (id_ms, id_seq)
);
-- The last id and number handed out (kept when the log is trimmed empty, so ids never go back).
CREATE TABLE IF NOT EXISTS cw_event_last (
    only   INTEGER PRIMARY KEY CHECK (only = 0),
    id_ms  INTEGER NOT NULL,
    id_seq INTEGER NOT NULL,
    n      INTEGER NOT NULL
);

-- Dashboard sessions (src/sqlite/sessions.rs): JSON under a digest key until `expires_ms`.
CREATE TABLE IF NOT EXISTS cw_sessions (
    key        TEXT    PRIMARY KEY,
    body       TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cw_sessions_expiry ON cw_sessions (expires_ms);

-- Gates and cron done marks (src/sqlite/gates.rs): `sweep:<queue>`, `cron:<schedule>:<tick ms>`;
-- a row counts until `expires_ms`; a tick marked done holds `done`.
CREATE TABLE IF NOT EXISTS cw_gates (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cw_gates_expiry ON cw_gates (expires_ms);

-- A cron schedule's last fired tick, ms (anything not an integer reads as never fired).
CREATE TABLE IF NOT EXISTS cw_cron_last (
    schedule TEXT PRIMARY KEY,
    tick_ms  INTEGER
) WITHOUT ROWID;

-- Providers' rate logs (src/sqlite/rate_log.rs): one row per grant, at `at_ms`, of `tokens`;
-- `until_ms` (two windows on) lets any call prune idle accounts' rows.
CREATE TABLE IF NOT EXISTS cw_rate_log (
    account  TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    tokens   INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cw_rate_log_account ON cw_rate_log (account, at_ms);
CREATE INDEX IF NOT EXISTS cw_rate_log_until ON cw_rate_log (until_ms);
