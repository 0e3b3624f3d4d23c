//! One embedded queue's roles on the SQLite file (`migrations/sqlite/0001_queue.sql`): the
//! Redis backend's behaviour (`crate::queue`, its scripts are the spec) on one jobs table.
//!
//! Rooms: `enqueue` (producers, all-or-nothing batches), `claim` (a worker's fetch, heartbeat,
//! progress), `finish` (how claims ended), `upkeep` (rescue, trim, cleanup, sweep, stats),
//! `inspect` (operators' reads and changes), `record` (a row as a [`b::JobRecord`], raw
//! fields). This file holds the handle, the trait impls (delegating), what spans queues (names,
//! cancel requests, the idle fetcher's wake-up) and the helpers the rooms share.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction over a bounded number of rows, so any number
//! of processes may share the file. A job waiting for its run-at is stored as `scheduled` (shown
//! as `pending`); the ready order is (priority, seq), seq counters living in `cw_queues`. Job
//! ids are unique per queue, as Redis's keys are. Idle fetchers poll without the write lock.

/// SQL assignments appending one attempt entry (a JSON object bound as `?N`) to a row's history
/// (a JSON array); a history that is not one is kept in `history_unreadable` and a new one
/// started. Used in `SET` lists (every expression reads the old row).
macro_rules! history_append {
    ($n:literal) => {
        concat!(
            "history = CASE WHEN json_valid(history) AND json_type(history) = 'array' \
             THEN json_insert(history, '$[#]', json(?",
            $n,
            ")) ELSE json_array(json(?",
            $n,
            ")) END, \
             history_unreadable = CASE WHEN history IS NOT NULL AND NOT (json_valid(history) \
             AND json_type(history) = 'array') THEN history ELSE history_unreadable END"
        )
    };
}

mod claim;
mod enqueue;
mod finish;
mod inspect;
mod record;
mod upkeep;

pub use enqueue::enqueue_atomic;

use crate::backend::{self as b, QueueOptions, Result, WorkSignal};
use async_trait::async_trait;
use chatter_jobs::{Job, Priority};
use futures::stream::BoxStream;
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Rows touched per write transaction (enqueue, finish, heartbeat chunks).
const CHUNK: usize = 500;
/// How often other processes' cancel requests are looked for.
const CANCEL_POLL: Duration = Duration::from_millis(200);
/// Longest an idle fetcher sleeps before it looks for other processes' work.
const SIGNAL_POLL: Duration = Duration::from_millis(250);

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

    /// A write transaction holding the file's write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        write(&self.pool).await
    }

    /// Wake this process's idle fetchers of this queue (after committed new work).
    fn wake(&self) {
        wake(&self.path, &self.name);
    }

    fn retention_ms(&self) -> i64 {
        ms(self.options.finished_retention)
    }
}

/// A write transaction holding the file's write lock from its first statement (concurrent
/// writers wait on the busy timeout rather than failing).
async fn write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Wake this process's idle fetchers of `queue`: those waiting now, and (a stored permit) the
/// next one to wait, so a wake-up between a fetch and its wait is not lost.
fn wake(path: &Path, queue: &str) {
    let n = crate::sqlite::signal(path, queue);
    n.notify_waiters();
    n.notify_one();
}

/// This process's wake-up of `queue`'s cancel-request streams.
fn cancel_signal(path: &Path, queue: &str) -> Arc<Notify> {
    crate::sqlite::signal(path, &format!("{queue}\u{0}cancel"))
}

/// Now, ms, as SQLite's integer.
fn now() -> i64 {
    b::now_ms() as i64
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A priority's stored number (0 critical .. 3 low).
fn prio_num(p: Priority) -> i64 {
    Priority::ALL.iter().position(|x| *x == p).unwrap_or(2) as i64
}

/// Reserve `n` places at the back of `queue`'s ready line; returns the first (the queue is
/// recorded if it was not yet).
async fn reserve_back(tx: &mut Transaction<'static, Sqlite>, queue: &str, n: usize) -> Result<i64> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO cw_queues (name, seq) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET seq = seq + ?2 RETURNING seq",
    )
    .bind(queue)
    .bind(n as i64)
    .fetch_one(&mut **tx)
    .await?;
    Ok(last - n as i64 + 1)
}

/// One place at the front of `queue`'s ready line (a job handed back already waited its turn).
async fn reserve_front(tx: &mut Transaction<'static, Sqlite>, queue: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO cw_queues (name, front) VALUES (?1, -1) \
         ON CONFLICT (name) DO UPDATE SET front = front - 1 RETURNING front",
    )
    .bind(queue)
    .fetch_one(&mut **tx)
    .await?)
}

/// Every queue name recorded, sorted.
pub async fn known_queues(pool: &SqlitePool) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM cw_queues ORDER BY name")
            .fetch_all(pool)
            .await?,
    )
}

/// Record queue names.
pub async fn register_queues(pool: &SqlitePool, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut tx = write(pool).await?;
    for name in names {
        sqlx::query("INSERT INTO cw_queues (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Ids of `queue`'s running jobs as their cancellation is requested: polled every
/// [`CANCEL_POLL`] (other processes' requests) and at once on this process's requests. Each id
/// is yielded once while its request stands. The stream ends on a read error (callers
/// subscribe again; heartbeats also carry requests).
pub async fn cancel_requests(
    pool: SqlitePool,
    path: &Path,
    queue: &str,
) -> Result<BoxStream<'static, String>> {
    struct Poll {
        pool: SqlitePool,
        queue: String,
        wake: Arc<Notify>,
        seen: HashSet<String>,
        ready: VecDeque<String>,
    }
    let start = Poll {
        pool,
        queue: queue.to_string(),
        wake: cancel_signal(path, queue),
        seen: HashSet::new(),
        ready: VecDeque::new(),
    };
    let stream = futures::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(id) = s.ready.pop_front() {
                return Some((id, s));
            }
            let ids: Vec<String> = match sqlx::query_scalar(
                "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'running' \
                 AND cancel_requested = 1",
            )
            .bind(&s.queue)
            .fetch_all(&s.pool)
            .await
            {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(queue = %s.queue, error = %e, "cancel requests: read failed");
                    return None;
                }
            };
            s.ready
                .extend(ids.iter().filter(|id| !s.seen.contains(*id)).cloned());
            s.seen = ids.into_iter().collect();
            if s.ready.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(CANCEL_POLL) => {}
                    _ = s.wake.notified() => {}
                }
            }
        }
    });
    Ok(Box::pin(stream))
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
    /// Wait up to `timeout` but at most [`SIGNAL_POLL`] (work enqueued by other processes is
    /// found by the fetch that follows); true when woken by this process's new work.
    async fn wait(&mut self, timeout: Duration) -> Result<bool> {
        Ok(
            tokio::time::timeout(timeout.min(SIGNAL_POLL), self.notify.notified())
                .await
                .is_ok(),
        )
    }
}

#[async_trait]
impl b::Producer for SqliteQueue {
    fn name(&self) -> &str {
        &self.name
    }
    async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<b::Enqueued>> {
        SqliteQueue::enqueue_batch(self, jobs).await
    }
}

#[async_trait]
impl b::Claims for SqliteQueue {
    async fn fetch(&self, worker: &str, max: usize, lease: Duration) -> Result<b::FetchResult> {
        SqliteQueue::fetch(self, worker, max, lease).await
    }
    async fn finish(&self, entries: &[b::FinishEntry]) -> Result<b::FinishReport> {
        SqliteQueue::finish(self, entries).await
    }
    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(String, u64)],
        lease: Duration,
        alive_for: Duration,
    ) -> Result<b::HeartbeatReport> {
        SqliteQueue::heartbeat(self, worker, held, lease, alive_for).await
    }
    async fn progress(&self, id: &str, fence: u64, progress: u8, message: &str) -> Result<bool> {
        SqliteQueue::progress(self, id, fence, progress, message).await
    }
    async fn deregister_worker(&self, worker: &str) -> Result<()> {
        SqliteQueue::deregister_worker(self, worker).await
    }
}

#[async_trait]
impl b::Upkeep for SqliteQueue {
    async fn rescue(&self, limit: usize) -> Result<b::RescueReport> {
        SqliteQueue::rescue(self, limit).await
    }
    async fn trim(&self, limit: usize) -> Result<b::TrimReport> {
        SqliteQueue::trim(self, limit).await
    }
    async fn cleanup(&self, dead: bool) -> Result<b::TrimReport> {
        SqliteQueue::cleanup(self, dead).await
    }
    async fn sweep(&self, lease: Duration) -> Result<b::SweepReport> {
        SqliteQueue::sweep(self, lease).await
    }
    /// Always 0: nothing is ever set aside on SQLite (the schema's types and CHECKs keep every
    /// row a row; a malformed payload is dead-lettered in place).
    async fn count_set_aside(&self) -> Result<u64> {
        Ok(0)
    }
    async fn stats(&self) -> Result<b::QueueStats> {
        SqliteQueue::stats(self).await
    }
}

#[async_trait]
impl b::Inspect for SqliteQueue {
    async fn show_many(&self, ids: &[String]) -> Result<Vec<Option<b::JobRecord>>> {
        SqliteQueue::show_many(self, ids).await
    }
    async fn index_page(
        &self,
        owner: &str,
        range: (u64, u64),
        offset: usize,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, u64)>> {
        SqliteQueue::index_page(self, owner, range, offset, count, newest_first).await
    }
    async fn index_count(&self, owner: &str, range: (u64, u64)) -> Result<u64> {
        SqliteQueue::index_count(self, owner, range).await
    }
    /// Nothing to do: the owner index is the jobs table's own index, so a deleted record
    /// leaves no entry behind.
    async fn unindex(&self, _owner: &str, _ids: &[String]) -> Result<()> {
        Ok(())
    }
    async fn scan_ids(&self, max: usize) -> Result<Vec<String>> {
        SqliteQueue::scan_ids(self, max).await
    }
    async fn cancel(&self, id: &str) -> Result<b::CancelResult> {
        SqliteQueue::cancel(self, id).await
    }
    async fn replay(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        SqliteQueue::replay(self, id, limit).await
    }
    async fn purge_dead(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        SqliteQueue::purge_dead(self, id, limit).await
    }
    async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<b::JobRecord>> {
        SqliteQueue::dead_list(self, offset, limit).await
    }
    async fn finished_count(&self, range: (u64, u64)) -> Result<u64> {
        SqliteQueue::finished_count(self, range).await
    }
    async fn pause(&self) -> Result<()> {
        SqliteQueue::pause(self).await
    }
    async fn resume(&self) -> Result<()> {
        SqliteQueue::resume(self).await
    }
    async fn is_paused(&self) -> Result<bool> {
        SqliteQueue::is_paused(self).await
    }
    async fn exists(&self, id: &str) -> Result<bool> {
        SqliteQueue::exists(self, id).await
    }
    async fn field(&self, id: &str, field: &str) -> Result<Option<String>> {
        SqliteQueue::field(self, id, field).await
    }
    async fn workers(&self) -> Result<Vec<(String, u64)>> {
        SqliteQueue::workers(self).await
    }
}

impl b::Queue for SqliteQueue {
    fn options(&self) -> &QueueOptions {
        &self.options
    }
}
