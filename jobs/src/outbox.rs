//! What a handler may send out while it runs: follow-up jobs and events.
//!
//! Handlers never touch Redis; the runtime hands them an [`Outbox`] that enqueues on the right
//! queue (idempotency keys apply) and publishes events on the events channel, where the job
//! progress events also go. A trait because of the crates' direction: the runtime (Redis) depends
//! on the jobs crate, never the reverse.
use crate::Job;
use futures::future::BoxFuture;
use serde_json::Value;

pub trait Outbox: Send + Sync {
    /// Enqueue jobs (each on its own `queue`); returns each job's id, the first job's for a
    /// repeated idempotency key.
    fn enqueue(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<String>, String>>;
    /// Publish one event (`{"type": "document.processing_started", ...}`).
    fn publish(&self, event: Value) -> BoxFuture<'_, Result<(), String>>;
}
