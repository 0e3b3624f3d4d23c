//! The Redis queue behind the backend traits: [`RedisQueue`] serves every per-queue role by its
//! own methods, and [`RedisBackend`] (a URL, a prefix and a shared connection) opens queues, wakes
//! idle fetchers with a blocking pop on a connection of their own, streams cancel requests from
//! pub/sub, and hands out the gates, cron marks and rate logs (`cron_gate`, `rate_log`), the
//! event log (`super::events`) and sessions (`super::sessions`).
use super::cron_gate::RedisGates;
use super::events;
use super::rate_log::RedisRateLog;
use super::{ConnectionManager, RedisQueue, Result, connect_until, known_queues};
use crate::backend::{self as b, Backend, Queue, QueueOptions, WorkSignal};
use crate::events::{Event, Logged, StreamId};
use async_trait::async_trait;
use chatter_jobs::Job;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[async_trait]
impl b::Producer for RedisQueue {
    fn name(&self) -> &str {
        RedisQueue::name(self)
    }
    async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<b::Enqueued>> {
        RedisQueue::enqueue_batch(self, jobs).await
    }
}

#[async_trait]
impl b::Claims for RedisQueue {
    async fn fetch(&self, worker: &str, max: usize, lease: Duration) -> Result<b::FetchResult> {
        RedisQueue::fetch(self, worker, max, lease).await
    }
    async fn finish(&self, entries: &[b::FinishEntry]) -> Result<b::FinishReport> {
        RedisQueue::finish(self, entries).await
    }
    async fn heartbeat(
        &self,
        worker: &str,
        held: &[(String, u64)],
        lease: Duration,
        alive_for: Duration,
    ) -> Result<b::HeartbeatReport> {
        RedisQueue::heartbeat(self, worker, held, lease, alive_for).await
    }
    async fn progress(&self, id: &str, fence: u64, progress: u8, message: &str) -> Result<bool> {
        RedisQueue::progress(self, id, fence, progress, message).await
    }
    async fn deregister_worker(&self, worker: &str) -> Result<()> {
        RedisQueue::deregister_worker(self, worker).await
    }
}

#[async_trait]
impl b::Upkeep for RedisQueue {
    async fn rescue(&self, limit: usize) -> Result<b::RescueReport> {
        RedisQueue::rescue(self, limit).await
    }
    async fn trim(&self, limit: usize) -> Result<b::TrimReport> {
        RedisQueue::trim(self, limit).await
    }
    async fn cleanup(&self, dead: bool) -> Result<b::TrimReport> {
        RedisQueue::cleanup(self, dead).await
    }
    async fn sweep(&self, lease: Duration) -> Result<b::SweepReport> {
        RedisQueue::sweep(self, lease).await
    }
    async fn count_set_aside(&self) -> Result<u64> {
        RedisQueue::count_set_aside(self).await
    }
    async fn stats(&self) -> Result<b::QueueStats> {
        RedisQueue::stats(self).await
    }
}

#[async_trait]
impl b::Inspect for RedisQueue {
    async fn show_many(&self, ids: &[String]) -> Result<Vec<Option<b::JobRecord>>> {
        RedisQueue::show_many(self, ids).await
    }
    async fn index_page(
        &self,
        owner: &str,
        range: (u64, u64),
        offset: usize,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, u64)>> {
        RedisQueue::index_page(self, owner, range, offset, count, newest_first).await
    }
    async fn index_count(&self, owner: &str, range: (u64, u64)) -> Result<u64> {
        RedisQueue::index_count(self, owner, range).await
    }
    async fn unindex(&self, owner: &str, ids: &[String]) -> Result<()> {
        RedisQueue::unindex(self, owner, ids).await
    }
    async fn scan_ids(&self, max: usize) -> Result<Vec<String>> {
        RedisQueue::scan_ids(self, max).await
    }
    async fn cancel(&self, id: &str) -> Result<b::CancelResult> {
        RedisQueue::cancel(self, id).await
    }
    async fn replay(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        RedisQueue::replay(self, id, limit).await
    }
    async fn purge_dead(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        RedisQueue::purge_dead(self, id, limit).await
    }
    async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<b::JobRecord>> {
        RedisQueue::dead_list(self, offset, limit).await
    }
    async fn finished_count(&self, range: (u64, u64)) -> Result<u64> {
        RedisQueue::finished_count(self, range).await
    }
    async fn pause(&self) -> Result<()> {
        RedisQueue::pause(self).await
    }
    async fn resume(&self) -> Result<()> {
        RedisQueue::resume(self).await
    }
    async fn is_paused(&self) -> Result<bool> {
        RedisQueue::is_paused(self).await
    }
    async fn exists(&self, id: &str) -> Result<bool> {
        RedisQueue::exists(self, id).await
    }
    async fn field(&self, id: &str, field: &str) -> Result<Option<String>> {
        RedisQueue::field(self, id, field).await
    }
    async fn workers(&self) -> Result<Vec<(String, u64)>> {
        RedisQueue::workers(self).await
    }
}

impl Queue for RedisQueue {
    fn options(&self) -> &QueueOptions {
        RedisQueue::options(self)
    }
}

/// Redis as a [`Backend`]: the URL (for connections of their own), the key prefix, and the
/// multiplexed connection queue handles share.
#[derive(Clone)]
pub struct RedisBackend {
    url: String,
    prefix: String,
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisBackend {
    pub fn new(url: &str, prefix: &str, conn: ConnectionManager) -> Self {
        Self {
            url: url.to_string(),
            prefix: prefix.to_string(),
            conn,
        }
    }
    /// Connect to `url` (one attempt).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Ok(Self::new(url, prefix, super::connect(url).await?))
    }
    /// Connect, retrying until Redis answers; `None` if `stop` trips first.
    pub async fn connect_until(url: &str, prefix: &str, stop: &CancellationToken) -> Option<Self> {
        Some(Self::new(url, prefix, connect_until(url, stop).await?))
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
    /// A concrete queue handle (what `queue` returns behind the trait).
    pub fn redis_queue(&self, name: &str, options: QueueOptions) -> RedisQueue {
        RedisQueue::new(self.conn.clone(), &self.prefix, name, options)
    }
}

/// An idle fetcher's wake-up: BLPOP on the queue's notify list, on a connection of its own (a
/// blocking command would stall a shared multiplexed connection).
struct Notify {
    conn: ConnectionManager,
    key: String,
}

#[async_trait]
impl WorkSignal for Notify {
    async fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let secs = timeout.as_secs_f64().max(0.001);
        let r: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(&self.key)
            .arg(secs)
            .query_async(&mut self.conn)
            .await?;
        Ok(r.is_some())
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn queue(&self, name: &str, options: QueueOptions) -> Arc<dyn Queue> {
        Arc::new(self.redis_queue(name, options))
    }
    async fn known_queues(&self) -> Result<Vec<String>> {
        known_queues(&mut self.conn.clone(), &self.prefix).await
    }
    async fn register_queues(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let _: () = redis::cmd("SADD")
            .arg(super::Keys::registry(&self.prefix))
            .arg(names)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
    async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
    async fn detached(&self, stop: &CancellationToken) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(
            Self::connect_until(&self.url, &self.prefix, stop).await?,
        ))
    }
    async fn work_signal(
        &self,
        queue: &str,
        stop: &CancellationToken,
    ) -> Option<Box<dyn WorkSignal>> {
        let conn = connect_until(&self.url, stop).await?;
        let key = super::Keys::new(&self.prefix, queue).notify();
        Some(Box::new(Notify { conn, key }))
    }
    fn event_log(&self) -> Arc<dyn b::EventLog> {
        Arc::new(RedisEventLog {
            conn: self.conn.clone(),
            key: super::Keys::event_log(&self.prefix),
        })
    }
    fn sessions(&self) -> Arc<dyn b::Sessions> {
        Arc::new(super::sessions::RedisSessions {
            conn: self.conn.clone(),
            prefix: self.prefix.clone(),
        })
    }
    async fn enqueue_atomic(
        &self,
        options: &QueueOptions,
        jobs: &[Job],
    ) -> Result<Vec<b::Enqueued>> {
        super::enqueue::enqueue_atomic(&self.conn, &self.prefix, options, jobs).await
    }
    async fn cancel_requests(&self, queue: &str) -> Result<BoxStream<'static, String>> {
        let channel = super::Keys::new(&self.prefix, queue).cancel_channel();
        let client = redis::Client::open(self.url.as_str())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        Ok(pubsub
            .into_on_message()
            .map(|m| m.get_payload::<String>().unwrap_or_default())
            .boxed())
    }
    fn gates(&self) -> Arc<dyn b::Gates> {
        Arc::new(RedisGates::new(self.conn.clone(), &self.prefix))
    }
    fn cron_gate(&self) -> Arc<dyn b::CronGate> {
        Arc::new(RedisGates::new(self.conn.clone(), &self.prefix))
    }
    fn rate_log(&self) -> Arc<dyn b::RateLog> {
        Arc::new(RedisRateLog::new(self.conn.clone(), &self.prefix))
    }
    async fn publish_event(&self, body: &str) -> Result<()> {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(super::Keys::events_channel_of(&self.prefix))
            .arg(body)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// The event log as one capped stream, `<prefix>:events:log`.
pub struct RedisEventLog {
    conn: ConnectionManager,
    key: String,
}

#[async_trait]
impl b::EventLog for RedisEventLog {
    async fn append(&self, maxlen: u64, events: &[Event]) -> Result<()> {
        Ok(events::append(&mut self.conn.clone(), &self.key, maxlen, events).await?)
    }
    async fn range_after(&self, after: StreamId, count: usize) -> Result<Vec<Logged>> {
        Ok(events::range_after(&mut self.conn.clone(), &self.key, after, count).await?)
    }
    async fn trimmed_after(&self, id: StreamId) -> Result<bool> {
        Ok(events::trimmed_after(&mut self.conn.clone(), &self.key, id).await?)
    }
    async fn last_id(&self) -> Result<StreamId> {
        Ok(events::last_id(&mut self.conn.clone(), &self.key).await?)
    }
    async fn read_after(
        &self,
        after: StreamId,
        block_ms: u64,
        count: usize,
    ) -> Result<Vec<Logged>> {
        Ok(events::read_after(&mut self.conn.clone(), &self.key, after, block_ms, count).await?)
    }
}
