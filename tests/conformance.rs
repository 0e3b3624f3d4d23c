//! The backend conformance suite (`tests/conformance/suite.rs`) on the Redis backend.
mod common;
#[path = "conformance/suite.rs"]
mod suite;

use chatter_worker::backend::Backend;
use std::sync::Arc;

/// The backend the tests act through, and the one their pools run on: both Redis.
fn backends_for(h: &common::Harness) -> (Arc<dyn Backend>, Arc<dyn Backend>) {
    (h.backend(), h.backend())
}

/// Probe: a retrying job's run-at (ms), read from the Redis retry set itself.
async fn retry_run_at(h: &common::Harness, queue: &str, id: &str) -> Option<u64> {
    redis::cmd("ZSCORE")
        .arg(h.queue(queue).keys().retry())
        .arg(id)
        .query_async(&mut h.conn.clone())
        .await
        .unwrap()
}

/// Probe: the live `job.progress` event bodies, from the Redis events channel (subscribed
/// when this returns).
async fn progress_events(
    h: &common::Harness,
    queue: &str,
) -> futures::stream::BoxStream<'static, String> {
    use futures::StreamExt;
    let client = redis::Client::open(h.url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(h.queue(queue).keys().events_channel())
        .await
        .unwrap();
    pubsub
        .into_on_message()
        .map(|m| m.get_payload::<String>().unwrap_or_default())
        .boxed()
}
