//! A fault-injecting backend for tests (asynq's test broker, as a decorator): it wraps a real
//! backend and fails every `every`-th call a worker pool makes to claim, finish or extend jobs,
//! before the call reaches the backend (the request is lost; nothing was applied). Producers'
//! and operators' calls (enqueue, show, stats...) and best-effort progress pass through, so a
//! test's own reads see the truth. A pool must ride these failures out: every behaviour of the
//! conformance suite holds with them.
use async_trait::async_trait;
use chatter_worker::backend::{
    Backend, CancelResult, Claims, CronGate, Enqueued, EventLog, FetchResult, FinishEntry,
    FinishReport, Gates, HeartbeatReport, Inspect, JobRecord, Producer, Queue, QueueError,
    QueueOptions, QueueStats, RateLog, RescueReport, Result, Sessions, SweepReport, TrimReport,
    Upkeep, WorkSignal,
};
use chatter_worker::jobs::Job;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often to fail, and how many failures were injected (shared by every handle).
#[derive(Debug)]
pub struct Faults {
    every: u64,
    calls: AtomicU64,
    pub injected: AtomicU64,
}

impl Faults {
    fn check(&self, what: &str) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % self.every == self.every - 1 {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(QueueError::Backend {
                backend: "faulty",
                source: format!("injected failure of {what}").into(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    pub faults: Arc<Faults>,
}

impl FaultyBackend {
    /// Fail every `every`-th pool call (every ≥ 2).
    pub fn wrap(inner: Arc<dyn Backend>, every: u64) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults: Arc::new(Faults {
                every: every.max(2),
                calls: AtomicU64::new(0),
                injected: AtomicU64::new(0),
            }),
        })
    }
}

#[derive(Debug)]
struct FaultyQueue {
    inner: Arc<dyn Queue>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Producer for FaultyQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        self.inner.enqueue_batch(jobs).await
    }
}

#[async_trait]
impl Claims for FaultyQueue {
    async fn fetch(&self, worker: &str, max: usize, lease: Duration) -> Result<FetchResult> {
        self.faults.check("fetch")?;
        self.inner.fetch(worker, max, lease).await
    }
    async fn finish(&self, entries: &[FinishEntry]) -> Result<FinishReport> {
        self.faults.check("finish")?;
        self.inner.finish(entries).await
    }
    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(String, u64)],
        lease: Duration,
        alive_for: Duration,
    ) -> Result<HeartbeatReport> {
        self.faults.check("heartbeat")?;
        self.inner.heartbeat(worker, held, lease, alive_for).await
    }
    async fn progress(&self, id: &str, fence: u64, progress: u8, message: &str) -> Result<bool> {
        self.inner.progress(id, fence, progress, message).await
    }
    async fn deregister_worker(&self, worker: &str) -> Result<()> {
        self.inner.deregister_worker(worker).await
    }
}

#[async_trait]
impl Upkeep for FaultyQueue {
    async fn rescue(&self, limit: usize) -> Result<RescueReport> {
        self.inner.rescue(limit).await
    }
    async fn trim(&self, limit: usize) -> Result<TrimReport> {
        self.inner.trim(limit).await
    }
    async fn cleanup(&self, dead: bool) -> Result<TrimReport> {
        self.inner.cleanup(dead).await
    }
    async fn sweep(&self, lease: Duration) -> Result<SweepReport> {
        self.inner.sweep(lease).await
    }
    async fn count_set_aside(&self) -> Result<u64> {
        self.inner.count_set_aside().await
    }
    async fn stats(&self) -> Result<QueueStats> {
        self.inner.stats().await
    }
}

#[async_trait]
impl Inspect for FaultyQueue {
    async fn show_many(&self, ids: &[String]) -> Result<Vec<Option<JobRecord>>> {
        self.inner.show_many(ids).await
    }
    async fn index_page(
        &self,
        owner: &str,
        range: (u64, u64),
        offset: usize,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, u64)>> {
        self.inner
            .index_page(owner, range, offset, count, newest_first)
            .await
    }
    async fn index_count(&self, owner: &str, range: (u64, u64)) -> Result<u64> {
        self.inner.index_count(owner, range).await
    }
    async fn unindex(&self, owner: &str, ids: &[String]) -> Result<()> {
        self.inner.unindex(owner, ids).await
    }
    async fn scan_ids(&self, max: usize) -> Result<Vec<String>> {
        self.inner.scan_ids(max).await
    }
    async fn cancel(&self, id: &str) -> Result<CancelResult> {
        self.inner.cancel(id).await
    }
    async fn replay(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        self.inner.replay(id, limit).await
    }
    async fn purge_dead(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        self.inner.purge_dead(id, limit).await
    }
    async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<JobRecord>> {
        self.inner.dead_list(offset, limit).await
    }
    async fn finished_count(&self, range: (u64, u64)) -> Result<u64> {
        self.inner.finished_count(range).await
    }
    async fn pause(&self) -> Result<()> {
        self.inner.pause().await
    }
    async fn resume(&self) -> Result<()> {
        self.inner.resume().await
    }
    async fn is_paused(&self) -> Result<bool> {
        self.inner.is_paused().await
    }
    async fn exists(&self, id: &str) -> Result<bool> {
        self.inner.exists(id).await
    }
    async fn field(&self, id: &str, field: &str) -> Result<Option<String>> {
        self.inner.field(id, field).await
    }
    async fn workers(&self) -> Result<Vec<(String, u64)>> {
        self.inner.workers().await
    }
}

impl Queue for FaultyQueue {
    fn options(&self) -> &QueueOptions {
        self.inner.options()
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn queue(&self, name: &str, options: QueueOptions) -> Arc<dyn Queue> {
        Arc::new(FaultyQueue {
            inner: self.inner.queue(name, options),
            faults: self.faults.clone(),
        })
    }
    async fn known_queues(&self) -> Result<Vec<String>> {
        self.inner.known_queues().await
    }
    async fn register_queues(&self, names: &[String]) -> Result<()> {
        self.inner.register_queues(names).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn detached(&self, stop: &CancellationToken) -> Option<Arc<dyn Backend>> {
        let inner = self.inner.detached(stop).await?;
        Some(Arc::new(Self {
            inner,
            faults: self.faults.clone(),
        }))
    }
    async fn work_signal(
        &self,
        queue: &str,
        stop: &CancellationToken,
    ) -> Option<Box<dyn WorkSignal>> {
        self.inner.work_signal(queue, stop).await
    }
    fn event_log(&self) -> Arc<dyn EventLog> {
        self.inner.event_log()
    }
    fn sessions(&self) -> Arc<dyn Sessions> {
        self.inner.sessions()
    }
    async fn enqueue_atomic(&self, options: &QueueOptions, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        self.inner.enqueue_atomic(options, jobs).await
    }
    async fn cancel_requests(&self, queue: &str) -> Result<BoxStream<'static, String>> {
        self.inner.cancel_requests(queue).await
    }
    fn gates(&self) -> Arc<dyn Gates> {
        self.inner.gates()
    }
    fn cron_gate(&self) -> Arc<dyn CronGate> {
        self.inner.cron_gate()
    }
    fn rate_log(&self) -> Arc<dyn RateLog> {
        self.inner.rate_log()
    }
    async fn publish_event(&self, body: &str) -> Result<()> {
        self.inner.publish_event(body).await
    }
}
