//! The Redis backend: every `redis::` call of the crate lives under this module.
//!
//! [`RedisQueue`] is a handle on one queue (its keys, a shared connection, its retention
//! settings). Its operations are split by role: `enqueue` (producers), `claim` (a worker's fetch,
//! finish, heartbeat, progress), `maint` (rescue, trim, stats: safe in every process) and
//! `admin` (show, cancel, replay, purge, pause), `sweep` (the consistency pass). `seam` puts them
//! behind the backend traits of `crate::backend`, and [`RedisBackend`] opens queues and hands
//! out what spans them: `cron_gate` (gates, cron marks, the clock), `rate_log`, `events` (the
//! event log) and `sessions` (dashboard logins).
pub mod admin;
pub mod claim;
pub mod cron_gate;
pub mod enqueue;
pub mod events;
pub mod keys;
pub mod maint;
pub mod rate_log;
pub mod scripts;
pub mod seam;
pub mod sessions;
pub mod sweep;

pub use crate::backend::backoff;
pub use crate::backend::error::{QueueError, Result};
pub use crate::backend::model::*;
pub use keys::Keys;
pub use seam::RedisBackend;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};
use std::time::Duration;

impl From<RedisError> for QueueError {
    fn from(e: RedisError) -> Self {
        QueueError::Backend {
            backend: "redis",
            source: Box::new(e),
        }
    }
}

/// Connect with the settings every chatter-worker connection uses: a response timeout long enough
/// for a bounded batch script, and automatic reconnection (callers retry failed calls).
pub async fn connect(url: &str) -> Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_secs(1))
        .set_number_of_retries(3);
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// Connect, retrying with [`backoff`] until Redis answers; `None` if `stop` trips first.
pub async fn connect_until(
    url: &str,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<ConnectionManager> {
    let mut retry = backoff();
    loop {
        match connect(url).await {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "redis not reachable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry.next().unwrap_or(Duration::from_secs(1))) => {}
                    _ = stop.cancelled() => return None,
                }
            }
        }
    }
}

/// A handle on one queue. Cheap to clone: the connection is shared and multiplexed.
#[derive(Clone)]
pub struct RedisQueue {
    pub(crate) conn: ConnectionManager,
    pub(crate) keys: Keys,
    pub(crate) options: QueueOptions,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("keys", &self.keys)
            .finish()
    }
}

impl RedisQueue {
    pub fn new(conn: ConnectionManager, prefix: &str, queue: &str, options: QueueOptions) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix, queue),
            options,
        }
    }
    pub fn name(&self) -> &str {
        self.keys.queue()
    }
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
    /// Remove a stopped worker from the live-worker set.
    pub async fn deregister_worker(&self, worker: &str) -> Result<()> {
        let _: i64 = redis::cmd("ZREM")
            .arg(self.keys.workers())
            .arg(worker)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// Delete every key matching `pattern` (benchmarks' clean-up between runs), in SCAN steps.
pub async fn delete_matching(url: &str, pattern: &str) -> Result<()> {
    let mut conn = connect(url).await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Every queue name recorded under a prefix.
pub async fn known_queues(conn: &mut ConnectionManager, prefix: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(Keys::registry(prefix))
        .query_async(conn)
        .await?;
    names.sort();
    Ok(names)
}

pub(crate) fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Value::SimpleString(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn array(v: Value, script: &'static str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(QueueError::Reply {
            script,
            detail: format!("expected an array, got {other:?}"),
        }),
    }
}
