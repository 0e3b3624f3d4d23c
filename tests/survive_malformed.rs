//! A malformed payload placed in a ready list is dead-lettered with the decode error, and the jobs
//! behind it run: a raw string that is not a job id, a record whose payload is not JSON, and one
//! whose format version this worker does not know. The worker goes on afterwards.
mod common;

use chatter_worker::jobs::{JobBuilder, Priority, Registry};
use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_dead_lettered_and_the_jobs_behind_them_run() {
    let h = setup().await;
    let q = h.queue("bad");
    let mut conn = h.conn.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut reg = Registry::default();
    reg.register("record", "bad", move |job, _| {
        let _ = tx.send(job.kwargs["n"].as_u64().unwrap());
        async { Ok(Value::Null) }
    });
    let rec = |n: u64| {
        JobBuilder::new("record", "bad")
            .arguments(json!({ "n": n }))
            .build()
    };

    q.enqueue(&rec(1)).await.unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(q.keys().ready(Priority::Normal))
        .arg(r#"{"function_name":"record","raw":"payload pushed by hand"}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let not_json = rec(100);
    let future = rec(101);
    q.enqueue_batch(&[not_json.clone(), future.clone(), rec(2)])
        .await
        .unwrap();
    let set = |id: &str, payload: String| {
        redis::cmd("HSET")
            .arg(q.keys().job(id))
            .arg("payload")
            .arg(payload)
            .clone()
    };
    let _: () = set(&not_json.id, "{not json".into())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = set(
        &future.id,
        future.encode().replacen("\"v\":1", "\"v\":99", 1),
    )
    .query_async(&mut conn)
    .await
    .unwrap();

    let pool = h.start_pool(&q, reg, pool_config(2));
    let mut seen = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
    seen.sort();
    assert_eq!(seen, vec![1, 2], "the valid jobs around the bad ones ran");
    wait_until(Duration::from_secs(20), "three dead letters", || async {
        q.stats().await.unwrap().dead == 3
    })
    .await;

    let dead = q.dead_list(0, 10).await.unwrap();
    let error_of = |pred: &dyn Fn(&str) -> bool| {
        dead.iter()
            .filter_map(|r| r.error_message.clone())
            .find(|e| pred(e))
    };
    assert!(
        error_of(&|e| e.contains("not the id of a job record")).is_some(),
        "{dead:#?}"
    );
    assert!(
        error_of(&|e| e.contains("payload is not JSON")).is_some(),
        "{dead:#?}"
    );
    assert!(
        error_of(&|e| e.contains("format version 99")).is_some(),
        "{dead:#?}"
    );
    let raw = dead.iter().find(|r| r.id.starts_with("orphan-")).unwrap();
    assert!(
        raw.raw_payload
            .as_deref()
            .unwrap()
            .contains("payload pushed by hand"),
        "the bad entry is kept, not lost"
    );

    q.enqueue(&rec(3)).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), 3, "the worker goes on");
    pool.stop().await;
}
