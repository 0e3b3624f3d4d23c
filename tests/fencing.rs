//! Fencing: a job whose lease expired is rescued and run by a second worker; the first worker's
//! late finish is refused (never applied) and counted in `chatter_stale_acks_total`.
mod common;

use chatter_worker::jobs::JobBuilder;
use chatter_worker::queue::{Finish, FinishEntry};
use chatter_worker::rescuer::{Rescuer, RescuerConfig};
use common::*;
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescued_job_refuses_the_first_holders_late_finish() {
    let h = setup().await;
    let q = h.queue("fence");
    let job = JobBuilder::new("ping", "fence").build();
    q.enqueue(&job).await.unwrap();

    // Worker 1 claims with a short lease and then goes silent (no heartbeat).
    let first = q
        .fetch("w1", 1, Duration::from_millis(50))
        .await
        .unwrap()
        .jobs
        .remove(0);
    assert_eq!((first.fence, first.attempt), (1, 1));
    let rescuer = Rescuer {
        config: RescuerConfig::default(),
        queues: vec![std::sync::Arc::new(q.clone())],
    };
    wait_until(LIMIT, "the lease to expire and be rescued", || async {
        rescuer.run_once().await.unwrap().requeued == 1
    })
    .await;
    assert_eq!(q.show(&job.id).await.unwrap().unwrap().status, "pending");

    // Worker 2 claims it again: a new fence.
    let second = q
        .fetch("w2", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .jobs
        .remove(0);
    assert_eq!(second.id, job.id);
    assert!(second.fence > first.fence);
    assert_eq!(second.attempt, 2, "the expired attempt counts");

    // Worker 1 wakes up: its heartbeat learns it lost the claim, its finish is refused.
    let hb = q
        .heartbeat(
            "w1",
            &[(job.id.clone(), first.fence)],
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(hb.lost, vec![(job.id.clone(), first.fence)]);
    let done = |fence, worker: &str| FinishEntry {
        id: job.id.clone(),
        fence,
        finish: Finish::Completed {
            result: Some(json!({ "by": worker }).to_string()),
        },
    };
    let late = q.finish(&[done(first.fence, "w1")]).await.unwrap();
    assert_eq!((late.applied, late.stale), (0, 1));
    assert_eq!(
        q.show(&job.id).await.unwrap().unwrap().status,
        "running",
        "the stale finish changed nothing"
    );

    let ok = q.finish(&[done(second.fence, "w2")]).await.unwrap();
    assert_eq!((ok.applied, ok.stale), (1, 0));
    let rec = q.show(&job.id).await.unwrap().unwrap();
    assert_eq!(rec.status, "completed");
    assert_eq!(rec.result, Some(json!({ "by": "w2" })));
    let history = rec.history.as_array().unwrap();
    assert!(
        history[0]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired: worker w1")
    );
}

/// The same with real processes: worker A is frozen (SIGSTOP: its heartbeats stop too), its lease
/// expires, worker B rescues and completes the job; A resumes and its finish is refused and counted
/// on A's own /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_is_fenced_out_and_counts_its_stale_ack() {
    let h = setup().await;
    let q = h.queue("maintenance");
    let a = WorkerProcess::spawn(
        &h.url,
        &h.prefix,
        "maintenance",
        &["--concurrency", "1", "--lease", "1s"],
    );
    let job = JobBuilder::new("sleep", "maintenance")
        .arguments(json!({ "ms": 1500 }))
        .build();
    q.enqueue(&job).await.unwrap();
    wait_until(LIMIT, "A to start the job", || async {
        q.show(&job.id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == "running")
    })
    .await;
    let owner_a = q.show(&job.id).await.unwrap().unwrap().worker.unwrap();
    a.signal("STOP");

    let b = WorkerProcess::spawn(
        &h.url,
        &h.prefix,
        "maintenance",
        &["--concurrency", "1", "--lease", "1s"],
    );
    wait_until(LIMIT, "B to complete the rescued job", || async {
        q.show(&job.id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == "completed")
    })
    .await;
    let rec = q.show(&job.id).await.unwrap().unwrap();
    assert_ne!(rec.worker.as_deref(), Some(owner_a.as_str()), "B ran it");
    assert!(rec.fence >= 2);

    a.signal("CONT");
    wait_until(LIMIT, "A to count its refused finish", || async {
        let m = a.get("/metrics").await;
        m.lines().any(|l| {
            l.starts_with("chatter_stale_acks_total{queue=\"maintenance\"}") && l.ends_with(" 1")
        })
    })
    .await;
    let after = q.show(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status.as_str(), after.fence),
        ("completed", rec.fence),
        "A's finish was not applied"
    );
    drop(b);
}
