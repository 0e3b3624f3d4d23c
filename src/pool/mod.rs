//! One worker pool per queue: claims jobs, runs them through an apalis worker, records outcomes.
//!
//! [`run`] starts the pool's loops (fetch, finish, heartbeat on a thread of its own, cancel
//! listener, progress) and an apalis worker over [`ClaimedTasks`]. On shutdown it stops fetching,
//! lets running jobs finish until the deadline, hands back whatever has not ended, flushes the
//! finishes, and returns a report. Every loop survives Redis outages with capped backoff.
mod loops;
pub mod shared;
mod tasks;

use crate::backend::{self, Backend, Queue};
use crate::retry::RetryPolicy;
use apalis::layers::WorkerBuilderExt;
use apalis_core::worker::builder::WorkerBuilder;
use chatter_jobs::Registry;
use shared::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tasks::{ClaimedTasks, Dispatch};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Jobs run at once by this pool (claimed and not yet ended).
    pub concurrency: usize,
    /// Upper bound on any job's run time; a job's own `timeout` may be shorter.
    pub timeout: Duration,
    /// A claim is kept alive by heartbeats every lease/3; a silent worker loses it after this.
    pub lease: Duration,
    /// Most jobs one fetch claims.
    pub fetch_batch: usize,
    /// Longest an idle fetcher blocks before it looks again (it is woken at once on enqueue).
    pub idle_wait: Duration,
    /// On shutdown, running jobs get this long to finish before they are handed back.
    pub shutdown_deadline: Duration,
    /// Retry policy per job kind; others use Chatter's default with the job's `retry_delay`.
    pub retry: HashMap<String, RetryPolicy>,
    /// Seed of the retry jitter (tests); `None` seeds from the OS.
    pub rng_seed: Option<u64>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            timeout: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            fetch_batch: 100,
            idle_wait: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(25),
            retry: HashMap::new(),
            rng_seed: None,
        }
    }
}

/// After the shutdown deadline, the time outcomes still get to be written before the pool
/// gives up on Redis (its claims then expire and are rescued).
pub const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// What a pool did before it stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PoolReport {
    pub worker: String,
    /// Claims handed back unfinished at shutdown (buffered, or running past the deadline).
    pub handed_back: usize,
    /// Claims still held when the finisher gave up (Redis down at exit): their leases expire
    /// and the rescuer hands them back.
    pub unflushed: usize,
}

/// A name unique to this process start: host, pid, queue and a random suffix.
pub fn worker_name(queue: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let suffix = ulid::Ulid::new().to_string();
    format!("{host}-{}-{queue}-{}", std::process::id(), &suffix[20..])
}

/// Run one queue's pool until `shutdown` is tripped, then drain (see module docs).
pub async fn run(
    backend: Arc<dyn Backend>,
    queue: Arc<dyn Queue>,
    registry: Registry,
    config: PoolConfig,
    shutdown: CancellationToken,
) -> backend::Result<PoolReport> {
    let worker = worker_name(queue.name());
    crate::metrics::register_queue(queue.name());
    // The backend may be down at start: wait for it like every loop does (or give up on shutdown).
    let Some(signal) = backend.work_signal(queue.name(), &shutdown).await else {
        return Ok(PoolReport {
            worker,
            ..PoolReport::default()
        });
    };
    // Show as a live worker before the first fetch, not only once the heartbeat thread has
    // connected (a failure here is retried by that thread).
    let _ = queue
        .heartbeat(&worker, &[], config.lease, config.lease)
        .await;
    let (finish_tx, finish_rx) = mpsc::unbounded_channel();
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let (task_tx, task_rx) = mpsc::channel(config.concurrency.max(1));
    let deadline = config.shutdown_deadline;
    let shared = Arc::new(Shared::new(
        queue,
        backend.event_log(),
        worker.clone(),
        config,
        registry,
        finish_tx,
        progress_tx,
    ));
    let closing = CancellationToken::new();
    let give_up = CancellationToken::new();
    let background = CancellationToken::new();

    let fetcher = tokio::spawn(loops::fetch(shared.clone(), task_tx, signal));
    let finisher = tokio::spawn(loops::finish(
        shared.clone(),
        finish_rx,
        closing.clone(),
        give_up.clone(),
    ));
    let progress = tokio::spawn(loops::progress(
        shared.clone(),
        progress_rx,
        background.clone(),
    ));
    let cancels = tokio::spawn(loops::cancel_listener(
        shared.clone(),
        backend.clone(),
        background.clone(),
    ));
    let heartbeat = loops::spawn_heartbeat(shared.clone(), backend, background.clone());

    let apalis_worker = WorkerBuilder::new(worker.as_str())
        .backend(ClaimedTasks {
            rx: task_rx,
            shared: shared.clone(),
        })
        .catch_panic()
        .build(Dispatch {
            shared: shared.clone(),
        });
    // The apalis worker drains and exits once its context is stopped, which `run_until` does when
    // the pool stops fetching.
    let stopping = shared.stopping.clone();
    let mut running = tokio::spawn(apalis_worker.run_until(async move {
        stopping.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    tracing::info!(%worker, queue = shared.queue.name(), "pool started");

    // Normally until shutdown; if the apalis worker ends first (it should not), stop the same way
    // so its claims are handed back instead of being kept alive by heartbeats forever.
    let died = tokio::select! {
        _ = shutdown.cancelled() => false,
        r = &mut running => {
            tracing::error!(%worker, result = ?r, "apalis worker ended on its own; stopping the pool");
            true
        }
    };
    // One deadline for the whole drain, from now: running jobs get until `stop_at`; writing
    // the outcomes gets `FLUSH_GRACE` more; every wait on Redis observes it, so an outage
    // (each call waiting out its connection retries) cannot stretch the exit past it.
    let stop_at = tokio::time::Instant::now() + deadline;
    let end = stop_at + FLUSH_GRACE;
    let timer = {
        let g = give_up.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(stop_at).await;
            g.cancel();
        })
    };
    shared.stopping.cancel();
    // A fetch in flight is not cancelled (see `loops::fetch`), but not waited past the deadline.
    let _ = tokio::time::timeout_at(stop_at, fetcher).await;
    let mut handed_back = 0;
    if !died
        && tokio::time::timeout_at(stop_at, &mut running)
            .await
            .is_err()
    {
        // Past the deadline: give running jobs back first (their later outcomes are ignored),
        // then stop the handlers.
        handed_back += shared.hand_back_active();
        running.abort();
    }
    // Claimed but never started (buffered when fetching stopped).
    handed_back += shared.hand_back_active();
    closing.cancel();
    let _ = tokio::time::timeout_at(end, finisher).await;
    timer.abort();
    background.cancel();
    let _ = tokio::time::timeout_at(end, progress).await;
    let _ = tokio::time::timeout_at(end, cancels).await;
    // The heartbeat thread ends at its next stop check, unless a call to a dead Redis holds it.
    let _ =
        tokio::time::timeout_at(end, tokio::task::spawn_blocking(move || heartbeat.join())).await;
    let unflushed = shared.held_count();
    let _ = tokio::time::timeout_at(end, shared.queue.deregister_worker(&worker)).await;
    tracing::info!(%worker, handed_back, unflushed, "pool stopped");
    Ok(PoolReport {
        worker,
        handed_back,
        unflushed,
    })
}
