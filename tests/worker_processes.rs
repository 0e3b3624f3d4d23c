//! Real `chatter-worker run` processes: kill -9 of a worker holding jobs (rescued once their lease
//! ends, double executions bounded by the jobs in flight), and SIGTERM (in-flight work finishes
//! within the deadline, or is handed back past it; nothing is lost).
mod common;

use chatter_worker::jobs::{Job, JobBuilder};
use chatter_worker::queue::RedisQueue;
use common::*;
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn sleeps(n: usize, ms: u64) -> Vec<Job> {
    (0..n)
        .map(|_| {
            JobBuilder::new("sleep", "maintenance")
                .arguments(json!({ "ms": ms }))
                .build()
        })
        .collect()
}

async fn statuses(q: &RedisQueue, jobs: &[Job]) -> Vec<String> {
    let mut out = Vec::new();
    for j in jobs {
        out.push(
            q.show(&j.id)
                .await
                .unwrap()
                .map(|r| r.status.to_string())
                .unwrap_or_else(|| "missing".into()),
        );
    }
    out
}

fn count(s: &[String], status: &str) -> usize {
    s.iter().filter(|x| *x == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_jobs_are_rescued_after_the_lease_and_run_again_at_most_once_each() {
    let h = setup().await;
    let q = h.queue("maintenance");
    let jobs = sleeps(100, 300);
    q.enqueue_batch(&jobs).await.unwrap();
    let args = ["--concurrency", "8", "--lease", "2s"];
    let first = WorkerProcess::spawn(&h.url, &h.prefix, "maintenance", &args);
    wait_until(LIMIT, "the first worker to be busy", || async {
        let s = q.stats().await.unwrap();
        s.running == 8 && s.finished > 0
    })
    .await;
    first.signal("KILL");
    let _ = first.wait(LIMIT).await;
    let in_flight = q.stats().await.unwrap().running;
    // Claims held at the kill: up to the concurrency, plus finished jobs whose finish was not
    // written yet (their permit is already free).
    assert!(in_flight > 0);

    let second = WorkerProcess::spawn(&h.url, &h.prefix, "maintenance", &args);
    wait_until(LIMIT, "every job to complete", || async {
        count(&statuses(&q, &jobs).await, "completed") == jobs.len()
    })
    .await;
    let mut twice = 0;
    for j in &jobs {
        if q.show(&j.id).await.unwrap().unwrap().fence > 1 {
            twice += 1;
        }
    }
    assert_eq!(
        twice as u64, in_flight,
        "double executions = the jobs in flight at the kill, no more"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_and_loses_nothing() {
    let h = setup().await;
    let q = h.queue("maintenance");
    let jobs = sleeps(12, 700);
    q.enqueue_batch(&jobs).await.unwrap();
    let w = WorkerProcess::spawn(
        &h.url,
        &h.prefix,
        "maintenance",
        &["--concurrency", "4", "--shutdown-deadline", "10s"],
    );
    wait_until(LIMIT, "four running", || async {
        q.stats().await.unwrap().running == 4
    })
    .await;
    let running: Vec<String> = {
        let s = statuses(&q, &jobs).await;
        jobs.iter()
            .zip(&s)
            .filter(|(_, st)| *st == "running")
            .map(|(j, _)| j.id.clone())
            .collect()
    };
    w.signal("TERM");
    assert!(
        w.wait(Duration::from_secs(15)).await.success(),
        "clean exit"
    );
    for id in &running {
        assert_eq!(
            q.show(id).await.unwrap().unwrap().status,
            "completed",
            "in-flight job {id} finished"
        );
    }
    let s = statuses(&q, &jobs).await;
    assert_eq!(count(&s, "running"), 0);
    assert_eq!(
        count(&s, "completed") + count(&s, "pending"),
        jobs.len(),
        "nothing lost: {s:?}"
    );
    assert_eq!(
        q.stats().await.unwrap().ready as usize,
        count(&s, "pending")
    );
    assert_eq!(
        q.stats().await.unwrap().workers,
        0,
        "the worker deregistered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_deadline_hands_running_jobs_back() {
    let h = setup().await;
    let q = h.queue("maintenance");
    let jobs = sleeps(3, 30_000);
    q.enqueue_batch(&jobs).await.unwrap();
    let w = WorkerProcess::spawn(
        &h.url,
        &h.prefix,
        "maintenance",
        &["--concurrency", "4", "--shutdown-deadline", "1s"],
    );
    wait_until(LIMIT, "three running", || async {
        q.stats().await.unwrap().running == 3
    })
    .await;
    w.signal("TERM");
    assert!(
        w.wait(Duration::from_secs(15)).await.success(),
        "clean exit"
    );
    for j in &jobs {
        let r = q.show(&j.id).await.unwrap().unwrap();
        assert_eq!(
            (r.status.as_str(), r.attempt),
            ("pending", 0),
            "handed back without counting an attempt"
        );
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.running), (3, 0));
}
