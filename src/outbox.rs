//! The Redis [`Outbox`] handlers send through: follow-up jobs onto their queues (idempotency keys
//! honoured), events onto the events channel the job progress events share, and job and
//! document events into the event log (`crate::events`).
use crate::queue::{Keys, QueueOptions, RedisQueue};
use chatter_jobs::{Job, Outbox};
use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use serde_json::Value;

#[derive(Clone)]
pub struct RedisOutbox {
    conn: ConnectionManager,
    prefix: String,
    options: QueueOptions,
}

impl RedisOutbox {
    pub fn new(conn: ConnectionManager, prefix: &str, options: QueueOptions) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            options,
        }
    }
}

impl Outbox for RedisOutbox {
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
                let q =
                    RedisQueue::new(self.conn.clone(), &self.prefix, name, self.options.clone());
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
            let keys = Keys::new(&self.prefix, "");
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("PUBLISH")
                .arg(keys.events_channel())
                .arg(event.to_string())
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            // Job and document events also go to the event log the API relays over SSE (with
            // replay); token deltas stay on the channel only.
            let logged = event
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with("document.") || t.starts_with("job."));
            if logged && let Some(e) = crate::events::Event::from_body(event) {
                crate::queue::events::append(
                    &mut conn,
                    &keys.event_log(),
                    self.options.event_log_len,
                    &[e],
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}
