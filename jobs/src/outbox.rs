//! What a handler may send out while it runs: follow-up jobs and events.
//!
//! Handlers never touch Redis; the runtime hands them an [`Outbox`] that enqueues on the right
//! queue (idempotency keys apply) and publishes events on the events channel, where the job
//! progress events also go. The second implementation is the in-memory one tests use.
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

/// Keeps what was sent, for tests and dry runs.
#[derive(Default)]
pub struct MemoryOutbox {
    pub jobs: std::sync::Mutex<Vec<Job>>,
    pub events: std::sync::Mutex<Vec<Value>>,
}

impl Outbox for MemoryOutbox {
    fn enqueue(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(async move {
            let mut held = self.jobs.lock().map_err(|e| e.to_string())?;
            let mut ids = Vec::with_capacity(jobs.len());
            for job in jobs {
                let first = job.idempotency_key.as_ref().and_then(|k| {
                    held.iter()
                        .find(|j| j.idempotency_key.as_ref() == Some(k))
                        .map(|j| j.id.clone())
                });
                match first {
                    Some(id) => ids.push(id),
                    None => {
                        ids.push(job.id.clone());
                        held.push(job);
                    }
                }
            }
            Ok(ids)
        })
    }

    fn publish(&self, event: Value) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.events.lock().map_err(|e| e.to_string())?.push(event);
            Ok(())
        })
    }
}
