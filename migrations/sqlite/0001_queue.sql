-- The embedded queue (src/sqlite/queue): queue names and flags, jobs with their states and
-- indexes, idempotency keys, live workers. Every table is STRICT, so a value written by hand
-- (the sqlite3 CLI) is of its column's type; CHECKs keep status and priority sane.

-- One row per queue ever used or registered: its pause flag and its ready-order counters.
CREATE TABLE cw_queues (
    name TEXT PRIMARY KEY NOT NULL,
    -- Next ready position at the back (enqueue, promotion, replay) and the front (requeue, rescue).
    seq INTEGER NOT NULL DEFAULT 0,
    front INTEGER NOT NULL DEFAULT 0,
    -- When the queue was paused (ms), NULL while it runs.
    paused_ms INTEGER
) STRICT;

-- One row per job. `status` is the job's status, except that a pending job waiting for its
-- run-at is stored as `scheduled` (shown as `pending`, like Redis's scheduled set).
CREATE TABLE cw_jobs (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'scheduled', 'running', 'retrying', 'completed', 'failed', 'cancelled')),
    -- 0 critical, 1 high, 2 normal, 3 low.
    priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    -- Ready order within a priority (FIFO; the front of the line is negative).
    seq INTEGER NOT NULL DEFAULT 0,
    -- When a scheduled / retrying job is due (ms; 0 = at once).
    run_at_ms INTEGER NOT NULL DEFAULT 0,
    enqueued_ms INTEGER NOT NULL,
    -- The envelope's created_at (ms): the owner index's order.
    created_ms INTEGER NOT NULL,
    -- The envelope JSON as enqueued.
    payload TEXT NOT NULL,
    fence INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    lease_until_ms INTEGER,
    worker TEXT,
    started_ms INTEGER,
    -- When it completed, was cancelled or dead-lettered (ms): retention's order.
    finished_ms INTEGER,
    progress INTEGER,
    progress_message TEXT,
    error TEXT,
    -- A JSON array of attempt entries (NULL until the first failure).
    history TEXT,
    -- A history found not to be a JSON array, kept when a new one is started.
    history_unreadable TEXT,
    result TEXT,
    -- The user the job belongs to (the envelope's created_by_user_id).
    owner TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    PRIMARY KEY (queue, id)
) STRICT;

-- Ready: an index range scan in claim order.
CREATE INDEX cw_jobs_ready ON cw_jobs (queue, status, priority, seq);
-- Scheduled and retrying by due time.
CREATE INDEX cw_jobs_due ON cw_jobs (queue, status, run_at_ms);
-- Running by lease expiry (the rescuer).
CREATE INDEX cw_jobs_lease ON cw_jobs (queue, status, lease_until_ms);
-- Finished and dead by when they ended (retention, listings).
CREATE INDEX cw_jobs_ended ON cw_jobs (queue, status, finished_ms);
-- Completed and cancelled together by when they ended (retention's count cap).
CREATE INDEX cw_jobs_done ON cw_jobs (queue, finished_ms) WHERE status IN ('completed', 'cancelled');
-- An owner's jobs by creation time (the API's listing).
CREATE INDEX cw_jobs_owner ON cw_jobs (queue, owner, created_ms) WHERE owner IS NOT NULL;

-- Idempotency keys: a second enqueue with the key before `expires_ms` returns `id`.
CREATE TABLE cw_idempotency (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) STRICT;
CREATE INDEX cw_idempotency_expiry ON cw_idempotency (expires_ms);

-- Registered workers and until when (ms) each counts as alive.
CREATE TABLE cw_workers (
    queue TEXT NOT NULL,
    worker TEXT NOT NULL,
    alive_until_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, worker)
) STRICT;
