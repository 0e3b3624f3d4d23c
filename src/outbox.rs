//! The [`Outbox`] handlers send through, over any backend: follow-up jobs onto their queues
//! (idempotency keys honoured), events onto the live events channel the job progress events
//! share, and job and document events also into the event log (`crate::events`), from which
//! the API relays them with replay.
use crate::backend::{Backend, QueueOptions};
use chatter_jobs::{Job, Outbox};
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct BackendOutbox {
    backend: Arc<dyn Backend>,
    options: QueueOptions,
}

impl BackendOutbox {
    pub fn new(backend: Arc<dyn Backend>, options: QueueOptions) -> Self {
        Self { backend, options }
    }
}

impl Outbox for BackendOutbox {
    fn enqueue(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(async move {
            // One batch per queue, answers put back in the jobs' order.
            let mut ids = vec![String::new(); jobs.len()];
            let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
            queues.sort_unstable();
            queues.dedup();
            for name in queues {
                let (at, batch): (Vec<usize>, Vec<Job>) = jobs
                    .iter()
                    .enumerate()
                    .filter(|(_, j)| j.queue == name)
                    .map(|(i, j)| (i, j.clone()))
                    .unzip();
                let q = self.backend.queue(name, self.options.clone());
                let done = q.enqueue_batch(&batch).await.map_err(|e| e.to_string())?;
                for (i, e) in at.into_iter().zip(done) {
                    ids[i] = e.id;
                }
            }
            Ok(ids)
        })
    }

    fn publish(&self, event: Value) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.backend
                .publish_event(&event.to_string())
                .await
                .map_err(|e| e.to_string())?;
            // Job and document events also go to the event log the API relays over SSE (with
            // replay); token deltas stay on the channel only.
            let logged = event
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("document.") || t.starts_with("job."));
            if logged && let Some(e) = crate::events::Event::from_body(event) {
                self.backend
                    .event_log()
                    .append(self.options.event_log_len, &[e])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}
