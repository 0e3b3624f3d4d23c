//! `[queue.NAME]` and the process-wide queue settings, turned into what the queue and the pools
//! take: [`QueueOptions`] for every queue handle, a [`PoolConfig`] per queue (its own settings
//! over the defaults), and the default concurrency of the CPU-bound queues.
use super::{ProviderKind, Settings};
use crate::pool::PoolConfig;
use crate::queue::QueueOptions;
use chatter_jobs::registry::queues;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub concurrency: Option<usize>,
    pub timeout_secs: Option<f64>,
    pub lease_secs: Option<f64>,
    pub fetch_batch: Option<usize>,
}

impl Settings {
    pub fn queue_options(&self) -> QueueOptions {
        QueueOptions {
            idempotency_ttl: Duration::from_secs_f64(self.idempotency_ttl_secs),
            finished_retention: Duration::from_secs_f64(self.finished_retention_secs),
            max_finished: self.max_finished,
            max_dead: self.max_dead,
            event_log_len: self.event_log_len,
            limits: self.limits.job_limits(),
        }
    }

    /// A queue's concurrency when `[queue.<name>]` sets none: `concurrency`, except where jobs
    /// use the CPU: chunking runs about one document per core, and embedding with the local
    /// model two batches (one in the model, one being read or written). More would only wait,
    /// each holding its documents or vectors: with 16 of each, the worker's peak RSS in the
    /// embedding benchmark was 400 MB against 263 MB at the same speed (docs/PERFORMANCE.md).
    pub fn default_concurrency(&self, queue: &str) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match queue {
            queues::CHUNKING => self.concurrency.min(cores.max(2)),
            queues::EMBEDDING if matches!(self.embedding.kind(), Ok(ProviderKind::Local)) => {
                self.concurrency.min(2)
            }
            _ => self.concurrency,
        }
    }

    pub fn pool_config(&self, queue: &str) -> PoolConfig {
        let q = self.queue.get(queue).cloned().unwrap_or_default();
        PoolConfig {
            concurrency: q
                .concurrency
                .unwrap_or_else(|| self.default_concurrency(queue)),
            timeout: Duration::from_secs_f64(q.timeout_secs.unwrap_or(self.timeout_secs)),
            lease: Duration::from_secs_f64(q.lease_secs.unwrap_or(self.lease_secs)),
            fetch_batch: q.fetch_batch.unwrap_or(self.fetch_batch),
            shutdown_deadline: Duration::from_secs_f64(self.shutdown_deadline_secs),
            retry: self.retry.clone(),
            ..PoolConfig::default()
        }
    }
}
