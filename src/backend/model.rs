//! The records that cross the backend seam, backend-neutral: what a fetch claims, how a claimed
//! job ended, what upkeep did, a job as operators see it, a queue's depth. A backend builds
//! them from its storage; the pool, API, CLI and metrics read them.
use chatter_jobs::{Job, Priority, Status, Timestamp};
use serde::Serialize;
use serde_json::Value as Json;
use std::time::Duration;

/// Now, ms since the Unix epoch (the unit of every run-at, lease and finish time here).
pub fn now_ms() -> u64 {
    Timestamp::now().millis()
}

/// How long finished work is remembered.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// A second enqueue with the same idempotency key within this time returns the first job's id.
    pub idempotency_ttl: Duration,
    /// Completed and cancelled jobs keep their record this long (0 = delete at once).
    pub finished_retention: Duration,
    /// At most this many completed / cancelled records are kept (oldest go first).
    pub max_finished: u64,
    /// At most this many dead letters are kept (oldest go first).
    pub max_dead: u64,
    /// Job and document events kept in the event log (the SSE replay buffer); 0 = no events.
    pub event_log_len: u64,
    /// Size limits and scheduling horizon every enqueued job is checked against.
    pub limits: chatter_jobs::JobLimits,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            finished_retention: Duration::from_secs(24 * 3600),
            max_finished: 100_000,
            max_dead: 1_000_000,
            event_log_len: crate::events::DEFAULT_MAXLEN,
            limits: chatter_jobs::JobLimits::default(),
        }
    }
}

/// A job claimed by this worker: its raw payload (decoded by the caller) and its claim.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub payload: Vec<u8>,
    pub fence: u64,
    pub attempt: u32,
    /// When the job became runnable (enqueue or run-at), ms: the start of its wait.
    pub due_ms: u64,
}

#[derive(Debug, Default)]
pub struct FetchResult {
    pub jobs: Vec<Claimed>,
    pub paused: bool,
    /// When nothing was claimed: the run-at of the earliest scheduled or retrying job.
    pub next_due_ms: Option<u64>,
    /// Ready-list entries that were not job ids, dead-lettered by the fetch.
    pub orphans: u64,
}

/// How a claimed job ended (the queue's side of an `Outcome`).
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Completed {
        result: Option<String>,
    },
    Retry {
        error: String,
        history: String,
        run_at_ms: u64,
    },
    Dead {
        error: String,
        history: String,
    },
    Cancelled {
        reason: String,
    },
    Snooze {
        run_at_ms: u64,
    },
    /// Handed back unfinished (shutdown); the attempt is not counted.
    Requeue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FinishEntry {
    pub id: String,
    pub fence: u64,
    pub finish: Finish,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FinishReport {
    pub applied: u64,
    pub stale: u64,
    /// The ids of the stale entries.
    pub stale_ids: Vec<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct HeartbeatReport {
    /// Claims (id, fence) this worker no longer holds (rescued elsewhere): stop them.
    pub lost: Vec<(String, u64)>,
    /// Jobs whose cancellation was requested: trip their tokens.
    pub cancel: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RescueReport {
    /// Expired leases put back to ready.
    pub requeued: u64,
    /// Expired leases whose attempts were spent: dead-lettered.
    pub dead: u64,
    /// Expired leases of jobs whose cancellation was requested.
    pub cancelled: u64,
}

impl RescueReport {
    pub fn total(&self) -> u64 {
        self.requeued + self.dead + self.cancelled
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrimReport {
    pub finished_removed: u64,
    pub dead_removed: u64,
}

/// One queue's depth per state.
#[cfg_attr(feature = "worker", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub queue: String,
    /// Ready jobs per priority: critical, high, normal, low.
    pub ready_by_priority: [u64; 4],
    pub ready: u64,
    pub scheduled: u64,
    pub retrying: u64,
    pub running: u64,
    pub dead: u64,
    pub finished: u64,
    pub paused: bool,
    pub workers: u64,
    /// Age of the oldest ready job, ms (0 when none is ready).
    pub oldest_ready_age_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    /// False when an idempotency key (or the same id) matched an existing job.
    pub created: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Job records looked at.
    pub checked: u64,
    /// Records put back into the structure their status needs (ready list, lease, retry, dead,
    /// done).
    pub repaired: u64,
    /// Malformed records dead-lettered with their reason.
    pub dead_lettered: u64,
    /// Keys of the wrong type set aside as `<p>:{q}:corrupt:*` (kept for inspection).
    pub set_aside: u64,
    pub ready_check_skipped: bool,
}

/// A job as Chatter shows it: the envelope's fields plus its state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    pub name: Option<String>,
    pub function_name: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub created_at: Option<Timestamp>,
    pub scheduled_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub error_message: Option<String>,
    /// Failed attempts so far (Chatter's `retry_count`).
    pub retry_count: u32,
    pub max_retries: u32,
    pub attempt: u32,
    pub fence: u64,
    pub result: Option<Json>,
    pub progress: u8,
    pub progress_message: Option<String>,
    pub worker: Option<String>,
    /// The user the job belongs to (`created_by_user_id`).
    pub owner: Option<String>,
    pub history: Json,
    /// The stored envelope; `null` with `payload_error` set when it does not decode.
    pub job: Option<Job>,
    pub payload_error: Option<String>,
    pub raw_payload: Option<String>,
    /// Fields whose bytes were not UTF-8, shown lossily (U+FFFD for what could not be read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lossy_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelResult {
    /// It had not started: it will never run.
    Cancelled,
    /// It is running: its worker was signalled and it ends `cancelled` at its next await.
    Cancelling,
    NotFound,
    /// It already ended with this status.
    AlreadyFinished(String),
}

/// One attempt's entry in a job's history (JSON object).
pub fn history_entry(attempt: u32, error: &str, worker: &str, at_ms: u64) -> String {
    serde_json::json!({ "attempt": attempt, "error": error, "at": at_ms, "worker": worker })
        .to_string()
}
