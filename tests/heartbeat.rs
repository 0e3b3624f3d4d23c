//! Heartbeats never starve: they run on a thread and runtime of their own, so even a handler that
//! wrongly blocks the async runtime (here its only thread) keeps its lease and is not rescued.
mod common;

use chatter_worker::jobs::{JobBuilder, Registry};
use chatter_worker::pool::PoolConfig;
use chatter_worker::rescuer::{Rescuer, RescuerConfig};
use common::*;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "current_thread")]
async fn a_handler_blocking_the_runtime_keeps_its_lease() {
    let h = setup().await;
    let q = h.queue("hb");
    let mut reg = Registry::default();
    reg.register("hog", "hb", |_, _| async {
        // Blocks the runtime's only thread for three leases (what `ctx.blocking` exists to avoid).
        std::thread::sleep(Duration::from_millis(900));
        Ok(Value::Null)
    });
    let config = PoolConfig {
        lease: Duration::from_millis(300),
        ..pool_config(1)
    };
    let pool = h.start_pool(&q, reg, config);
    let job = JobBuilder::new("hog", "hb").build();
    q.enqueue(&job).await.unwrap();

    // A rescuer in another thread (another process, in production) keeps looking meanwhile.
    let rq = q.keys().clone();
    let id = job.id.clone();
    let url = h.url.clone();
    let prefix = h.prefix.clone();
    let watcher = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let conn = chatter_worker::queue::connect(&url).await.unwrap();
            let q = chatter_worker::queue::RedisQueue::new(
                conn,
                &prefix,
                rq.queue(),
                Default::default(),
            );
            let rescuer = Rescuer {
                config: RescuerConfig::default(),
                queues: vec![std::sync::Arc::new(q.clone())],
            };
            let mut rescued = 0;
            let start = std::time::Instant::now();
            loop {
                rescued += rescuer.run_once().await.unwrap().total();
                let status = q.field(&id, "status").await.unwrap();
                if status.as_deref() == Some("completed")
                    || start.elapsed() > Duration::from_secs(20)
                {
                    return rescued;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let rescued = tokio::task::spawn_blocking(move || watcher.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        rescued, 0,
        "the lease was kept alive while the runtime was blocked"
    );
    let rec = q.show(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (rec.status.as_str(), rec.fence),
        ("completed", 1),
        "ran once, never rescued"
    );
    pool.stop().await;
}
