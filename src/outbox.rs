//! The [`Outbox`] handlers send through, over any backend: follow-up jobs onto their queues
//! (idempotency keys honoured), events onto the live events channel the job progress events
//! share, and job and document events also into the event log (`crate::events`), from which
//! the API relays them with replay.
use crate::backend::{Backend, QueueOptions};
use crate::submit::Submitter;
use chatter_jobs::{Job, Outbox, Registry};
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct BackendOutbox {
    backend: Arc<dyn Backend>,
    options: QueueOptions,
    /// Follow-up jobs take the submit path every producer's jobs take, against the kinds this
    /// build ships (the shipped handlers only send those; a job of another kind, or for another
    /// queue than its kind's, is refused with the reason rather than stranded on a queue no
    /// handler reads).
    submit: Submitter,
}

impl BackendOutbox {
    pub fn new(backend: Arc<dyn Backend>, options: QueueOptions) -> Self {
        let submit = Submitter::new(backend.clone(), Registry::builtin(), options.clone());
        Self {
            backend,
            options,
            submit,
        }
    }
}

impl Outbox for BackendOutbox {
    fn enqueue(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(async move {
            let done = self.submit.submit(&jobs).await.map_err(|e| e.to_string())?;
            Ok(done.into_iter().map(|e| e.id).collect())
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
