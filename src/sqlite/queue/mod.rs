//! One embedded queue's roles on the SQLite file.
use crate::backend::{self as b, QueueOptions, Result, WorkSignal};
use async_trait::async_trait;
use chatter_jobs::Job;
use futures::stream::BoxStream;
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A handle on one queue of the file.
#[derive(Clone, Debug)]
pub struct SqliteQueue {
    pool: SqlitePool,
    path: PathBuf,
    name: String,
    options: QueueOptions,
}

impl SqliteQueue {
    pub fn new(pool: SqlitePool, path: &Path, name: &str, options: QueueOptions) -> Self {
        Self {
            pool,
            path: path.to_path_buf(),
            name: name.to_string(),
            options,
        }
    }
}

/// Every queue name recorded, sorted.
pub async fn known_queues(_pool: &SqlitePool) -> Result<Vec<String>> {
    todo!()
}

/// Record queue names.
pub async fn register_queues(_pool: &SqlitePool, _names: &[String]) -> Result<()> {
    todo!()
}

/// Enqueue jobs bound for any queues, all or nothing.
pub async fn enqueue_atomic(
    _pool: &SqlitePool,
    _path: &Path,
    _options: &QueueOptions,
    _jobs: &[Job],
) -> Result<Vec<b::Enqueued>> {
    todo!()
}

/// Ids of `queue`'s running jobs as their cancellation is requested.
pub async fn cancel_requests(
    _pool: SqlitePool,
    _path: &Path,
    _queue: &str,
) -> Result<BoxStream<'static, String>> {
    todo!()
}

/// An idle fetcher's wake-up: this process's enqueues at once, other processes' by polling.
pub struct Signal {
    notify: Arc<Notify>,
}

impl Signal {
    pub fn new(notify: Arc<Notify>) -> Self {
        Self { notify }
    }
}

#[async_trait]
impl WorkSignal for Signal {
    async fn wait(&mut self, _timeout: Duration) -> Result<bool> {
        let _ = &self.notify;
        todo!()
    }
}

#[async_trait]
impl b::Producer for SqliteQueue {
    fn name(&self) -> &str {
        &self.name
    }
    async fn enqueue_batch(&self, _jobs: &[Job]) -> Result<Vec<b::Enqueued>> {
        let _ = (&self.pool, &self.path);
        todo!()
    }
}

#[async_trait]
impl b::Claims for SqliteQueue {
    async fn fetch(&self, _worker: &str, _max: usize, _lease: Duration) -> Result<b::FetchResult> {
        todo!()
    }
    async fn finish(&self, _entries: &[b::FinishEntry]) -> Result<b::FinishReport> {
        todo!()
    }
    async fn heartbeat(
        &self,
        _worker: &str,
        _held: &[(String, u64)],
        _lease: Duration,
        _alive_for: Duration,
    ) -> Result<b::HeartbeatReport> {
        todo!()
    }
    async fn progress(
        &self,
        _id: &str,
        _fence: u64,
        _progress: u8,
        _message: &str,
    ) -> Result<bool> {
        todo!()
    }
    async fn deregister_worker(&self, _worker: &str) -> Result<()> {
        todo!()
    }
}

#[async_trait]
impl b::Upkeep for SqliteQueue {
    async fn rescue(&self, _limit: usize) -> Result<b::RescueReport> {
        todo!()
    }
    async fn trim(&self, _limit: usize) -> Result<b::TrimReport> {
        todo!()
    }
    async fn cleanup(&self, _dead: bool) -> Result<b::TrimReport> {
        todo!()
    }
    async fn sweep(&self, _lease: Duration) -> Result<b::SweepReport> {
        todo!()
    }
    async fn count_set_aside(&self) -> Result<u64> {
        todo!()
    }
    async fn stats(&self) -> Result<b::QueueStats> {
        todo!()
    }
}

#[async_trait]
impl b::Inspect for SqliteQueue {
    async fn show_many(&self, _ids: &[String]) -> Result<Vec<Option<b::JobRecord>>> {
        todo!()
    }
    async fn index_page(
        &self,
        _owner: &str,
        _range: (u64, u64),
        _offset: usize,
        _count: usize,
        _newest_first: bool,
    ) -> Result<Vec<(String, u64)>> {
        todo!()
    }
    async fn index_count(&self, _owner: &str, _range: (u64, u64)) -> Result<u64> {
        todo!()
    }
    async fn unindex(&self, _owner: &str, _ids: &[String]) -> Result<()> {
        todo!()
    }
    async fn scan_ids(&self, _max: usize) -> Result<Vec<String>> {
        todo!()
    }
    async fn cancel(&self, _id: &str) -> Result<b::CancelResult> {
        todo!()
    }
    async fn replay(&self, _id: Option<&str>, _limit: usize) -> Result<u64> {
        todo!()
    }
    async fn purge_dead(&self, _id: Option<&str>, _limit: usize) -> Result<u64> {
        todo!()
    }
    async fn dead_list(&self, _offset: usize, _limit: usize) -> Result<Vec<b::JobRecord>> {
        todo!()
    }
    async fn finished_count(&self, _range: (u64, u64)) -> Result<u64> {
        todo!()
    }
    async fn pause(&self) -> Result<()> {
        todo!()
    }
    async fn resume(&self) -> Result<()> {
        todo!()
    }
    async fn is_paused(&self) -> Result<bool> {
        todo!()
    }
    async fn exists(&self, _id: &str) -> Result<bool> {
        todo!()
    }
    async fn field(&self, _id: &str, _field: &str) -> Result<Option<String>> {
        todo!()
    }
    async fn workers(&self) -> Result<Vec<(String, u64)>> {
        todo!()
    }
}

impl b::Queue for SqliteQueue {
    fn options(&self) -> &QueueOptions {
        &self.options
    }
}
