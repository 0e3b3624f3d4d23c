//! The embedded backend: every queue role and everything that spans queues on one SQLite file
//! (WAL), the file the embedded store (`chatter_jobs::store::SqliteStore`) also lives in. Every
//! `sqlx::sqlite` call of this crate lives under this module, as every `redis::` call lives
//! under `crate::queue`.
//!
//! Writers take the file's write lock with `BEGIN IMMEDIATE` and wait for it up to the busy
//! timeout, so any number of processes may share the file; leases and fences work as on Redis
//! (every claim increments the job's fence, stale finishes change nothing). An idle fetcher is
//! woken at once by an enqueue in its own process and polls for other processes' work.
//!
//! Rooms: `queue/` (one queue's roles: enqueue, claim, upkeep, inspect), `events` (the event
//! log), `sessions` (dashboard logins), `gates` (the sweep's and cron's once-per-interval
//! gates, the cron marks and clock), `rate_log` (providers' shared rate limits).
pub mod events;
pub mod gates;
pub mod queue;
pub mod rate_log;
pub mod sessions;

pub use queue::SqliteQueue;

use crate::backend::{self as b, Backend, Queue, QueueError, QueueOptions, Result, WorkSignal};
use async_trait::async_trait;
use chatter_jobs::Job;
use futures::stream::BoxStream;
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The default file of the embedded mode (in the working directory).
pub const DEFAULT_PATH: &str = "chatter-worker.db";

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Backend {
            backend: "sqlite",
            source: Box::new(e),
        }
    }
}

impl From<chatter_jobs::store::StoreError> for QueueError {
    fn from(e: chatter_jobs::store::StoreError) -> Self {
        QueueError::Backend {
            backend: "sqlite",
            source: Box::new(e),
        }
    }
}

/// Wake-ups by (file, queue).
type Signals = HashMap<(PathBuf, String), Arc<Notify>>;

/// This process's wake-ups of idle fetchers, by (file, queue): an enqueue notifies its own
/// process at once; other processes' enqueues are found by polling.
static SIGNALS: LazyLock<Mutex<Signals>> = LazyLock::new(Default::default);

/// The wake-up of `queue` on the file at `path` in this process.
pub fn signal(path: &Path, queue: &str) -> Arc<Notify> {
    SIGNALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((path.to_path_buf(), queue.to_string()))
        .or_default()
        .clone()
}

/// This process's live events channels, by file (job progress, token deltas): nothing is kept,
/// and other processes do not see them (the event log is what every process sees).
static LIVE: LazyLock<Mutex<HashMap<PathBuf, tokio::sync::broadcast::Sender<String>>>> =
    LazyLock::new(Default::default);

/// The live events channel of the file at `path` in this process.
pub fn live(path: &Path) -> tokio::sync::broadcast::Sender<String> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(path.to_path_buf())
        .or_insert_with(|| tokio::sync::broadcast::channel(1024).0)
        .clone()
}

/// The embedded backend: a pool on one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteBackend {
    /// Open (creating and migrating) the file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let pool = chatter_jobs::store::sqlite::open(path).await?;
        Ok(Self::new(pool, path))
    }

    /// The backend on a pool from `chatter_jobs::store::sqlite::open` of `path`.
    pub fn new(pool: SqlitePool, path: &Path) -> Self {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Self { pool, path }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on queue `name` (the concrete type, for tests and benchmarks).
    pub fn sqlite_queue(&self, name: &str, options: QueueOptions) -> SqliteQueue {
        SqliteQueue::new(self.pool.clone(), &self.path, name, options)
    }

    /// A receiver on [`live`] of this file.
    pub fn live_events(&self) -> tokio::sync::broadcast::Receiver<String> {
        live(&self.path).subscribe()
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn queue(&self, name: &str, options: QueueOptions) -> Arc<dyn Queue> {
        Arc::new(self.sqlite_queue(name, options))
    }
    async fn known_queues(&self) -> Result<Vec<String>> {
        queue::known_queues(&self.pool).await
    }
    async fn register_queues(&self, names: &[String]) -> Result<()> {
        queue::register_queues(&self.pool, names).await
    }
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
    async fn detached(&self, _stop: &CancellationToken) -> Option<Arc<dyn Backend>> {
        // A pool of its own on the same file (a loop on another runtime must not share ours).
        match chatter_jobs::store::sqlite::open_unmigrated(&self.path, 4).await {
            Ok(pool) => Some(Arc::new(Self {
                pool,
                path: self.path.clone(),
            })),
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "cannot open the SQLite file again");
                None
            }
        }
    }
    async fn work_signal(
        &self,
        queue: &str,
        _stop: &CancellationToken,
    ) -> Option<Box<dyn WorkSignal>> {
        Some(Box::new(queue::Signal::new(signal(&self.path, queue))))
    }
    fn event_log(&self) -> Arc<dyn b::EventLog> {
        Arc::new(events::SqliteEventLog::new(self.pool.clone()))
    }
    fn sessions(&self) -> Arc<dyn b::Sessions> {
        Arc::new(sessions::SqliteSessions::new(self.pool.clone()))
    }
    async fn enqueue_atomic(
        &self,
        options: &QueueOptions,
        jobs: &[Job],
    ) -> Result<Vec<b::Enqueued>> {
        queue::enqueue_atomic(&self.pool, &self.path, options, jobs).await
    }
    async fn cancel_requests(&self, queue: &str) -> Result<BoxStream<'static, String>> {
        queue::cancel_requests(self.pool.clone(), &self.path, queue).await
    }
    fn gates(&self) -> Arc<dyn b::Gates> {
        Arc::new(gates::SqliteGates::new(self.pool.clone()))
    }
    fn cron_gate(&self) -> Arc<dyn b::CronGate> {
        Arc::new(gates::SqliteGates::new(self.pool.clone()))
    }
    fn rate_log(&self) -> Arc<dyn b::RateLog> {
        Arc::new(rate_log::SqliteRateLog::new(self.pool.clone()))
    }
    async fn publish_event(&self, body: &str) -> Result<()> {
        // No receiver is not an error: the live channel keeps nothing.
        let _ = live(&self.path).send(body.to_string());
        Ok(())
    }
}
