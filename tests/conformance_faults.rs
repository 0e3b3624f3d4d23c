//! The backend conformance suite (`tests/conformance/suite.rs`) on Redis behind a decorator that
//! fails every third call a pool makes to fetch, finish or heartbeat (before it reaches Redis):
//! the pool's retries must hide every such failure from what the suite checks.
mod common;
#[path = "common/faulty.rs"]
mod faulty;
#[path = "conformance/redis_probes.rs"]
mod redis_probes;
#[path = "conformance/suite.rs"]
mod suite;

use redis_probes::{progress_events, retry_run_at};

use chatter_worker::backend::Backend;
use std::sync::Arc;

/// The tests act on Redis itself (their own reads and operator calls see the truth); their
/// pools run on it behind the fault injection.
fn backends_for(h: &common::Harness) -> (Arc<dyn Backend>, Arc<dyn Backend>) {
    (h.backend(), faulty::FaultyBackend::wrap(h.backend(), 3))
}

/// The decorator really fails calls, and a pool still completes every job exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_are_ridden_out() {
    use chatter_worker::backend::QueueOptions;
    use chatter_worker::jobs::{JobBuilder, Registry};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let h = common::setup().await;
    let faulty = faulty::FaultyBackend::wrap(h.backend(), 3);
    let q = faulty.queue("faults", QueueOptions::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let mut reg = Registry::default();
    let r = runs.clone();
    reg.register("count", "faults", move |_, _| {
        r.fetch_add(1, Ordering::Relaxed);
        async { Ok(serde_json::Value::Null) }
    });
    let jobs: Vec<_> = (0..200)
        .map(|_| JobBuilder::new("count", "faults").build())
        .collect();
    q.enqueue_batch(&jobs).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = chatter_worker::pool::PoolConfig {
        fetch_batch: 10,
        ..common::pool_config(4)
    };
    let pool = tokio::spawn(chatter_worker::pool::run(
        faulty.clone(),
        q.clone(),
        reg,
        config,
        shutdown.clone(),
    ));
    common::wait_until(
        std::time::Duration::from_secs(30),
        "every job to finish",
        || async { q.stats().await.unwrap().finished == 200 },
    )
    .await;
    shutdown.cancel();
    pool.await.unwrap().unwrap();
    let injected = faulty.faults.injected.load(Ordering::Relaxed);
    assert!(injected > 0, "no failure was injected");
    assert_eq!(
        runs.load(Ordering::Relaxed),
        200,
        "{injected} injected failures"
    );
}
