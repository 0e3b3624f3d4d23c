//! The conformance suite's two probes read in Redis's own terms, for the crates that run the
//! suite on Redis (`tests/conformance.rs`, `tests/conformance_faults.rs`).
use crate::common::Harness;

/// Probe: a retrying job's run-at (ms), read from the Redis retry set itself.
pub async fn retry_run_at(h: &Harness, queue: &str, id: &str) -> Option<u64> {
    redis::cmd("ZSCORE")
        .arg(h.queue(queue).keys().retry())
        .arg(id)
        .query_async(&mut h.conn.clone())
        .await
        .unwrap()
}

/// Probe: the live `job.progress` event bodies, from the Redis events channel (subscribed
/// when this returns).
pub async fn progress_events(
    h: &Harness,
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
