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

#[cfg(feature = "handlers")]
/// Publish a `document.*` event (`type`, `document_id`, `owner_id`, `job_id`, then `extra`'s
/// fields). Best effort: an event lost to a Redis blip must not fail the job.
pub async fn publish_document_event(
    outbox: &dyn Outbox,
    kind: &str,
    document_id: &str,
    owner_id: Option<&str>,
    job_id: &str,
    extra: Value,
) {
    let mut e = serde_json::json!({
        "type": kind,
        "document_id": document_id,
        "owner_id": owner_id,
        "job_id": job_id,
    });
    if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
        e.extend(extra);
    }
    if let Err(err) = outbox.publish(e).await {
        tracing::warn!(document = %document_id, error = %err, "event not published");
    }
}
