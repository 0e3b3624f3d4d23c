//! Redis restarted (AOF on) in the middle of a 100k-job run: every loop retries with capped
//! backoff, the workers reconnect, and every job completes (at least once).
mod common;

use chatter_worker::jobs::{Job, JobBuilder, Registry};
use chatter_worker::pool::PoolConfig;
use chatter_worker::queue::{self, QueueOptions, RedisQueue};
use chatter_worker::rescuer::{Rescuer, RescuerConfig};
use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: usize = 100_000;

fn start_redis(port: u16, dir: &std::path::Path) -> Child {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
        ])
        .args(["--appendfsync", "everysec", "--dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

async fn wait_ping(url: &str) {
    wait_until(Duration::from_secs(20), "redis to answer", || async {
        match redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
        {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_no_job() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cw-restart-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = start_redis(port, &dir);
    wait_ping(&url).await;

    let conn = queue::connect(&url).await.unwrap();
    let q = RedisQueue::new(
        conn,
        "restart",
        "r",
        QueueOptions {
            max_finished: N as u64,
            ..QueueOptions::default()
        },
    );
    let jobs: Vec<Job> = (0..N)
        .map(|_| JobBuilder::new("noop", "r").build())
        .collect();
    for chunk in jobs.chunks(10_000) {
        q.enqueue_batch(chunk).await.unwrap();
    }
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    let mut reg = Registry::default();
    reg.register("noop", "r", move |job, _| {
        s.lock().unwrap().insert(job.id);
        async { Ok(Value::Null) }
    });
    let config = PoolConfig {
        fetch_batch: 100,
        lease: Duration::from_secs(2),
        ..pool_config(64)
    };
    let start = |reg: Registry| {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let join = tokio::spawn(chatter_worker::pool::run(
            std::sync::Arc::new(chatter_worker::queue::RedisBackend::new(
                &url,
                q.keys().prefix(),
                q.connection(),
            )),
            std::sync::Arc::new(q.clone()),
            reg,
            config.clone(),
            shutdown.clone(),
        ));
        (shutdown, join)
    };
    let pools = [start(reg.clone()), start(reg)];
    // Every worker process runs a rescuer: a claim whose reply was lost when Redis stopped comes
    // back once its lease ends.
    let rescue_stop = tokio_util::sync::CancellationToken::new();
    let rescuer = Rescuer {
        config: RescuerConfig::default(),
        queues: vec![std::sync::Arc::new(q.clone())],
    };
    let rescuing = tokio::spawn(rescuer.run(rescue_stop.clone()));

    wait_until(Duration::from_secs(120), "a fifth of the jobs", || async {
        seen.lock().unwrap().len() >= N / 5
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &redis.id().to_string()])
        .status();
    redis.wait().unwrap();
    let at_stop = seen.lock().unwrap().len();
    assert!(at_stop < N, "the restart happened mid-run");
    let mut redis = start_redis(port, &dir);
    wait_ping(&url).await;

    wait_until(
        Duration::from_secs(300),
        "every job to complete",
        || async { seen.lock().unwrap().len() == N },
    )
    .await;
    wait_until(Duration::from_secs(60), "the queue to settle", || async {
        q.stats()
            .await
            .map(|s| s.running == 0 && s.finished == N as u64)
            .unwrap_or(false)
    })
    .await;
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.running, s.retrying, s.scheduled, s.dead),
        (0, 0, 0, 0, 0)
    );
    rescue_stop.cancel();
    rescuing.await.unwrap();
    for (shutdown, join) in pools {
        shutdown.cancel();
        join.await.unwrap().unwrap();
    }
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shutting down while Redis is gone does not hang: the pending finish gets the shutdown deadline,
/// then the pool stops and reports it unflushed (its lease expires; the rescuer hands it back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_redis_outage_ends_after_the_deadline() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cw-outage-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = start_redis(port, &dir);
    wait_ping(&url).await;
    let conn = queue::connect(&url).await.unwrap();
    let q = RedisQueue::new(conn, "outage", "o", QueueOptions::default());
    let release = Arc::new(tokio::sync::Notify::new());
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let r = release.clone();
    let mut reg = Registry::default();
    reg.register("wait", "o", move |_, _| {
        let _ = tx.send(());
        let r = r.clone();
        async move {
            r.notified().await;
            Ok(Value::Null)
        }
    });
    let config = PoolConfig {
        shutdown_deadline: Duration::from_secs(1),
        ..pool_config(1)
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pool = tokio::spawn(chatter_worker::pool::run(
        std::sync::Arc::new(chatter_worker::queue::RedisBackend::new(
            &url,
            q.keys().prefix(),
            q.connection(),
        )),
        std::sync::Arc::new(q.clone()),
        reg,
        config,
        shutdown.clone(),
    ));
    q.enqueue(&JobBuilder::new("wait", "o").build())
        .await
        .unwrap();
    started.recv().await.unwrap();

    let _ = redis.kill();
    redis.wait().unwrap();
    release.notify_one();
    shutdown.cancel();
    let report = tokio::time::timeout(Duration::from_secs(20), pool)
        .await
        .expect("the pool stopped despite the outage")
        .unwrap()
        .unwrap();
    assert_eq!(report.unflushed, 1, "{report:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
