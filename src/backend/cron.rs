//! Cross-process gates: what lets every process run the cron scheduler and the consistency sweep
//! at once while each tick fires, and each queue is swept, once. A [`Gate`] names what is
//! claimed (the backend owns how it is stored); [`Gates::try_claim`] is the one "first caller
//! within the ttl wins" primitive both use, and [`CronGate`] adds what the scheduler keeps
//! beside its ticks: a schedule's last fire, a tick marked done, and the backend's clock.
use super::Result;
use async_trait::async_trait;
use std::time::{Duration, SystemTime};

/// Something claimed by one process at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate<'a> {
    /// One tick (ms since the epoch) of a cron schedule.
    CronTick { schedule: &'a str, tick_ms: i64 },
    /// One interval's consistency sweep of a queue.
    Sweep { queue: &'a str },
}

/// Claims that expire on their own, so a claimer that dies holds nothing for long.
#[async_trait]
pub trait Gates: Send + Sync {
    /// Claim `gate` as `holder` for `ttl` unless anyone holds it; true when this caller won.
    async fn try_claim(&self, gate: Gate<'_>, holder: &str, ttl: Duration) -> Result<bool>;
    /// Give `gate` back if `holder` still holds it (one taken over since is left alone).
    async fn release(&self, gate: Gate<'_>, holder: &str) -> Result<()>;
}

/// The cron scheduler's state, shared by every process that runs it.
#[async_trait]
pub trait CronGate: Gates {
    /// The backend's clock: the same for every process, so none fires early or marks a tick
    /// missed because its own clock is skewed.
    async fn now(&self) -> Result<SystemTime>;
    /// The schedule's last fired (or passed) tick, ms; `None` when never fired, or when what is
    /// stored is not a tick (a damaged mark costs one catch-up, not the schedule).
    async fn last_fire(&self, schedule: &str) -> Result<Option<i64>>;
    /// Move the last fire to `tick_ms` when that is later (it never moves back); a damaged
    /// mark is replaced.
    async fn advance_last_fire(&self, schedule: &str, tick_ms: i64) -> Result<()>;
    /// Mark a tick enqueued, for `keep` (replacing the claim on it).
    async fn mark_done(&self, schedule: &str, tick_ms: i64, keep: Duration) -> Result<()>;
    /// Whether a tick was marked enqueued (by any process).
    async fn is_done(&self, schedule: &str, tick_ms: i64) -> Result<bool>;
}
