//! The backend seam: what the runtime asks of a queue backend, named for the roles that ask it.
//!
//! A queue handle is a [`Queue`]: a [`Producer`] (enqueue), [`Claims`] (a worker's fetch, finish,
//! heartbeat, progress), [`Upkeep`] (rescue, trim, sweep, stats: safe in every process at once)
//! and [`Inspect`] (operators' show, cancel, replay, pause). A [`Backend`] opens queue handles and
//! owns what spans queues: the queue registry, the idle fetcher's wake-up, cancel requests,
//! the cross-process gates of cron and sweep ([`cron`]), the shared rate limits ([`ratelimit`]),
//! all-or-nothing batches, the event log and dashboard [`Sessions`].
//! The Redis implementation is `crate::queue`; nothing outside it speaks Redis.
pub mod checks;
pub mod cron;
pub mod error;
pub mod model;
pub mod ratelimit;
pub mod sessions;

pub use cron::{CronGate, Gate, Gates};
pub use error::{QueueError, Result};
pub use model::*;
pub use ratelimit::RateLog;
pub use sessions::{Session, Sessions};

use crate::events::{Event, Logged, StreamId};
use async_trait::async_trait;
use chatter_jobs::Job;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;

/// Capped, jittered exponential backoff for every retry loop (20 ms up to 2 s, forever).
pub fn backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Largest batch one fetch may claim (bounds a backend's work per call).
pub const MAX_FETCH: usize = 500;

/// Producers' side: put jobs on the queue. Enqueue is idempotent by job id and idempotency key;
/// every job is checked against [`QueueOptions::limits`] first (nothing is written on a refusal).
#[async_trait]
pub trait Producer: Send + Sync {
    /// The queue's name.
    fn name(&self) -> &str;
    /// Enqueue a batch (any size: backends cut it into bounded steps); one result per job.
    async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<Enqueued>>;
    async fn enqueue(&self, job: &Job) -> Result<Enqueued> {
        Ok(self
            .enqueue_batch(std::slice::from_ref(job))
            .await?
            .remove(0))
    }
}

/// A worker's side. Every claim increments the job's fence; `finish`, `heartbeat` and
/// `progress` change nothing when the fence they carry is no longer current.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Claim up to `max` ready jobs (promoting due scheduled ones first) with a lease of `lease`.
    async fn fetch(&self, worker: &str, max: usize, lease: Duration) -> Result<FetchResult>;
    /// Record how claimed jobs ended; stale entries are refused and returned.
    async fn finish(&self, entries: &[FinishEntry]) -> Result<FinishReport>;
    /// Extend the leases `held` (id, fence) and mark `worker` alive for `alive_for`.
    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(String, u64)],
        lease: Duration,
        alive_for: Duration,
    ) -> Result<HeartbeatReport>;
    /// Record a running job's progress; false when the fence is stale.
    async fn progress(&self, id: &str, fence: u64, progress: u8, message: &str) -> Result<bool>;
    /// Remove a stopped worker from the live-worker set.
    async fn deregister_worker(&self, worker: &str) -> Result<()>;
}

/// Upkeep: each call is atomic over a bounded number of entries, so every process may run it.
#[async_trait]
pub trait Upkeep: Send + Sync {
    /// Hand back up to `limit` jobs whose lease expired (or dead-letter those out of attempts).
    async fn rescue(&self, limit: usize) -> Result<RescueReport>;
    /// Drop up to `limit` finished records and dead letters past retention.
    async fn trim(&self, limit: usize) -> Result<TrimReport>;
    /// Delete every finished record now (and every dead letter when `dead`).
    async fn cleanup(&self, dead: bool) -> Result<TrimReport>;
    /// One consistency pass: every record back in the structure its status names.
    async fn sweep(&self, lease: Duration) -> Result<SweepReport>;
    /// Keys of the wrong type set aside by scripts and sweeps (kept for inspection).
    async fn count_set_aside(&self) -> Result<u64>;
    /// Depth per state, live workers, oldest ready age.
    async fn stats(&self) -> Result<QueueStats>;
}

/// Operators' and producers' view: read, cancel, replay, purge, pause.
#[async_trait]
pub trait Inspect: Send + Sync {
    async fn show(&self, id: &str) -> Result<Option<JobRecord>> {
        Ok(self.show_many(&[id.to_string()]).await?.pop().flatten())
    }
    /// Records in the order of `ids` (`None` where there is none).
    async fn show_many(&self, ids: &[String]) -> Result<Vec<Option<JobRecord>>>;
    /// A page of an owner's (job id, creation time ms) whose creation time is in `range`.
    async fn index_page(
        &self,
        owner: &str,
        range: (u64, u64),
        offset: usize,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, u64)>>;
    async fn index_count(&self, owner: &str, range: (u64, u64)) -> Result<u64>;
    /// Forget ids found in an owner's index that have no record any more.
    async fn unindex(&self, owner: &str, ids: &[String]) -> Result<()>;
    /// Up to `max` ids: running, ready, scheduled, retrying, then the newest dead and finished.
    async fn scan_ids(&self, max: usize) -> Result<Vec<String>>;
    async fn cancel(&self, id: &str) -> Result<CancelResult>;
    /// Put dead letters (one, or up to `limit`) back on the queue.
    async fn replay(&self, id: Option<&str>, limit: usize) -> Result<u64>;
    async fn purge_dead(&self, id: Option<&str>, limit: usize) -> Result<u64>;
    async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<JobRecord>>;
    /// Jobs that finished (completed or cancelled) at a time (ms) in `range`.
    async fn finished_count(&self, range: (u64, u64)) -> Result<u64>;
    async fn pause(&self) -> Result<()>;
    async fn resume(&self) -> Result<()>;
    async fn is_paused(&self) -> Result<bool>;
    async fn exists(&self, id: &str) -> Result<bool>;
    /// One raw field of a job record (diagnostics).
    async fn field(&self, id: &str, field: &str) -> Result<Option<String>>;
    /// This queue's registered workers and until when (ms) each counts as alive.
    async fn workers(&self) -> Result<Vec<(String, u64)>>;
}

/// One queue: every role. Cheap to clone behind an `Arc`.
pub trait Queue: Producer + Claims + Upkeep + Inspect + std::fmt::Debug {
    fn options(&self) -> &QueueOptions;
}

/// Wakes an idle fetcher when its queue gets work (a blocking wait, so it owns its connection).
#[async_trait]
pub trait WorkSignal: Send {
    /// Wait up to `timeout`; true when woken by new work.
    async fn wait(&mut self, timeout: Duration) -> Result<bool>;
}

/// The event log: job and document events in one capped log per prefix, ids ordered and the same
/// in every process (the SSE `Last-Event-ID`s). See `crate::events`.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Append in order, capping the log at about `maxlen` entries (0: append nothing).
    async fn append(&self, maxlen: u64, events: &[Event]) -> Result<()>;
    /// Up to `count` events after `after`, oldest first.
    async fn range_after(&self, after: StreamId, count: usize) -> Result<Vec<Logged>>;
    /// Whether events after `id` were already trimmed away (a resume would miss some).
    async fn trimmed_after(&self, id: StreamId) -> Result<bool>;
    /// The newest id (`0-0` when empty).
    async fn last_id(&self) -> Result<StreamId>;
    /// Wait up to `block_ms` for events after `after` (a blocking read: use a [`Backend::detached`]
    /// handle's log, not a shared one).
    async fn read_after(&self, after: StreamId, block_ms: u64, count: usize)
    -> Result<Vec<Logged>>;
}

/// A backend: opens queue handles and serves what spans queues.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Its name in messages and metrics (`redis`).
    fn name(&self) -> &'static str;
    /// A handle on queue `name` with `options`.
    fn queue(&self, name: &str, options: QueueOptions) -> Arc<dyn Queue>;
    /// Every queue name recorded, sorted.
    async fn known_queues(&self) -> Result<Vec<String>>;
    /// Handles on every queue recorded and every queue a kind of `registry` runs on, by name,
    /// each once (what operators list: a queue with kinds shows before its first job).
    async fn all_queues(
        &self,
        registry: &chatter_jobs::Registry,
        options: &QueueOptions,
    ) -> Result<Vec<Arc<dyn Queue>>> {
        let mut names = self.known_queues().await?;
        names.extend(registry.queues());
        names.sort();
        names.dedup();
        Ok(names
            .iter()
            .map(|n| self.queue(n, options.clone()))
            .collect())
    }
    /// The queue holding job `id` among [`Backend::all_queues`] (asking them all at once).
    async fn find_job(
        &self,
        registry: &chatter_jobs::Registry,
        options: &QueueOptions,
        id: &str,
    ) -> Result<Option<Arc<dyn Queue>>> {
        let queues = self.all_queues(registry, options).await?;
        let found = futures::future::join_all(queues.iter().map(|q| q.exists(id))).await;
        for (q, found) in queues.into_iter().zip(found) {
            if found? {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }
    /// Record queue names (for `queues`, metrics and the API's listing).
    async fn register_queues(&self, names: &[String]) -> Result<()>;
    /// Answers when the backend is reachable (readiness).
    async fn ping(&self) -> Result<()>;
    /// The same backend over connections of its own (a loop on another runtime or thread must
    /// not share the caller's), waiting until it is reachable; `None` if `stop` trips first.
    async fn detached(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<Arc<dyn Backend>>;
    /// A wake-up for `queue`'s idle fetcher, waiting until reachable; `None` if `stop` trips.
    async fn work_signal(
        &self,
        queue: &str,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<Box<dyn WorkSignal>>;
    /// The event log of this backend's prefix.
    fn event_log(&self) -> Arc<dyn EventLog>;
    /// The dashboard's login sessions of this backend's prefix.
    fn sessions(&self) -> Arc<dyn Sessions>;
    /// Enqueue jobs bound for any queues all or nothing (each checked against
    /// `options.limits` first); one result per job, in order.
    async fn enqueue_atomic(&self, options: &QueueOptions, jobs: &[Job]) -> Result<Vec<Enqueued>>;
    /// Ids of `queue`'s running jobs as their cancellation is requested. The stream ends when the
    /// subscription breaks (callers subscribe again; heartbeats also carry requests).
    async fn cancel_requests(&self, queue: &str) -> Result<BoxStream<'static, String>>;
    /// Once-per-interval claims (the sweep's; the cron ticks' through [`Backend::cron_gate`]).
    fn gates(&self) -> Arc<dyn Gates>;
    /// The cron scheduler's gates, last fires and clock.
    fn cron_gate(&self) -> Arc<dyn CronGate>;
    /// The providers' shared rate-limit logs.
    fn rate_log(&self) -> Arc<dyn RateLog>;
    /// Send an event body to the live events channel (job progress, token deltas): whoever
    /// listens now gets it, nothing is kept (the event log keeps what must be replayable).
    async fn publish_event(&self, body: &str) -> Result<()>;
}
