//! Burst: 1,000,000 jobs enqueued while no worker runs; then two workers start and all complete.
//! (apalis-redis 1.0.0 wedges past ~8k due jobs; fetch here promotes and pops in bounded steps.)
mod common;

use chatter_worker::jobs::{Job, JobBuilder, Registry};
use chatter_worker::pool::PoolConfig;
use chatter_worker::queue::QueueOptions;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const N: usize = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_queued_jobs_all_complete() {
    let h = setup().await;
    let q = h.queue_with(
        "burst",
        QueueOptions {
            max_finished: N as u64,
            ..QueueOptions::default()
        },
    );
    let t = Instant::now();
    for _ in 0..N / 50_000 {
        let jobs: Vec<Job> = (0..50_000)
            .map(|_| JobBuilder::new("noop", "burst").build())
            .collect();
        q.enqueue_batch(&jobs).await.unwrap();
    }
    let enqueued = t.elapsed();
    assert_eq!(q.stats().await.unwrap().ready, N as u64);

    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let mut reg = Registry::default();
    reg.register("noop", "burst", move |_, _| {
        d.fetch_add(1, Ordering::Relaxed);
        async { Ok(Value::Null) }
    });
    let config = PoolConfig {
        fetch_batch: 200,
        ..pool_config(256)
    };
    let t = Instant::now();
    let a = h.start_pool(&q, reg.clone(), config.clone());
    let b = h.start_pool(&q, reg, config);
    wait_until(
        Duration::from_secs(600),
        "a million completions",
        || async {
            let s = q.stats().await.unwrap();
            s.finished == N as u64 && s.running == 0
        },
    )
    .await;
    let drained = t.elapsed();
    a.stop().await;
    b.stop().await;
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.running, s.retrying, s.dead, s.finished),
        (0, 0, 0, 0, N as u64)
    );
    assert!(done.load(Ordering::Relaxed) >= N as u64);
    eprintln!("1M jobs: enqueued in {enqueued:?}, drained by two pools in {drained:?}");

    // Give the memory back: drop this test's keys.
    let mut conn = h.conn.clone();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}:*", h.prefix))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}
