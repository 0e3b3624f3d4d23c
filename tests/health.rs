//! Health of real worker processes whose dependencies are away: `/readyz` names PostgreSQL when
//! it is unreachable (and is 200 when it answers), `/healthz` answers while Redis is down at
//! start, and SIGTERM during a Redis outage ends the process within its shutdown deadline.
mod common;

use chatter_worker::jobs::JobBuilder;
use chatter_worker::queue::{self, QueueOptions, RedisQueue};
use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// Poll `path` until `ok(status, body)`; returns the last answer.
async fn until(w: &WorkerProcess, path: &str, ok: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let start = Instant::now();
    loop {
        if let Ok((st, body)) = http_get(&w.http, path).await {
            if ok(st, &body) {
                return (st, body);
            }
        }
        assert!(
            start.elapsed() < LIMIT,
            "http://{}{path} never answered as expected",
            w.http
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn closed_port_url(scheme: &str) -> String {
    // A port that was free a moment ago: nothing listens there.
    format!("{scheme}://u:p@127.0.0.1:{}/db", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_postgres_when_it_is_unreachable_and_is_200_when_it_answers() {
    let h = setup().await;
    let mut down = WorkerProcess::spawn(
        &h.url,
        &h.prefix,
        "maintenance",
        &["--database-url", &closed_port_url("postgres")],
    );
    let (st, body) = until(&down, "/readyz", |_, b| b.contains("postgres")).await;
    println!("readyz with PostgreSQL down: {st} {body:?}");
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("postgres unreachable"), "{body}");
    assert!(!body.contains("redis"), "Redis is up: {body}");
    assert_eq!(http_get(&down.http, "/healthz").await.unwrap().0, 200);
    let _ = down.child.kill();

    let Ok(db) = std::env::var("DATABASE_URL") else {
        panic!("DATABASE_URL is not set: source /tmp/svc.env or run scripts/test.sh");
    };
    let up = WorkerProcess::spawn(
        &h.url,
        &format!("{}-up", h.prefix),
        "maintenance",
        &["--database-url", &db],
    );
    let (st, body) = until(&up, "/readyz", |st, _| st == 200).await;
    assert_eq!((st, body.as_str()), (200, "ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_redis_is_down_at_start() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let w = WorkerProcess::spawn(&url, "health-noredis", "maintenance", &[]);
    let (st, _) = until(&w, "/healthz", |st, _| st != 0).await;
    assert_eq!(st, 200);
    let (st, body) = http_get(&w.http, "/readyz").await.unwrap();
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    let (st, body) = http_get(&w.http, "/api/v1/jobs").await.unwrap();
    assert_eq!(st, 503, "{body}");
    // Still waiting for Redis, it stops at once on SIGTERM.
    w.signal("TERM");
    let start = Instant::now();
    assert!(w.wait(LIMIT).await.success());
    println!("exit while waiting for Redis: {:?}", start.elapsed());
}

fn start_redis(port: u16) -> Child {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_redis_outage_exits_within_the_deadline() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = start_redis(port);
    let conn = {
        let start = Instant::now();
        loop {
            if let Ok(c) = queue::connect(&url).await {
                break c;
            }
            assert!(start.elapsed() < LIMIT, "own redis-server never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let q = RedisQueue::new(conn, "outage", "maintenance", QueueOptions::default());
    // Jobs running when Redis goes: the drain waits for them, then for Redis, within the deadline.
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            JobBuilder::new("sleep", "maintenance")
                .arguments(json!({"ms": 60_000}))
                .build()
        })
        .collect();
    q.enqueue_batch(&jobs).await.unwrap();
    let deadline = Duration::from_secs(5);
    let w = WorkerProcess::spawn(
        &url,
        "outage",
        "maintenance",
        &["--shutdown-deadline", "5s"],
    );
    wait_until(LIMIT, "three running", || async {
        q.stats().await.is_ok_and(|s| s.running == 3)
    })
    .await;
    redis.kill().unwrap();
    redis.wait().unwrap();
    until(&w, "/readyz", |st, _| st == 503).await;
    w.signal("TERM");
    let start = Instant::now();
    let status = w.wait(deadline * 2).await;
    println!(
        "SIGTERM during a Redis outage: exited in {:?} (deadline {deadline:?}), {status}",
        start.elapsed()
    );
}
