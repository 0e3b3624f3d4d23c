//! Test harness: every test gets its own key prefix on the Redis that `scripts/test.sh` started
//! (`REDIS_URL`), a `setup()` returning handles, and waits on signals or conditions, never on
//! fixed sleeps. Helpers for pools run in-process and for worker processes of the real binary.
#![allow(dead_code)]

use chatter_worker::jobs::{Job, JobBuilder, Registry};
use chatter_worker::pool::{self, PoolConfig, PoolReport};
use chatter_worker::queue::{self, QueueOptions, RedisBackend, RedisQueue};
use redis::aio::ConnectionManager;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL is not set: run the tests through scripts/test.sh")
}

pub struct Harness {
    pub url: String,
    pub prefix: String,
    pub conn: ConnectionManager,
}

pub async fn setup() -> Harness {
    let url = redis_url();
    let conn = queue::connect(&url)
        .await
        .expect("connect to the test Redis");
    Harness {
        prefix: format!("t{}", ulid::Ulid::new()),
        url,
        conn,
    }
}

impl Harness {
    pub fn queue(&self, name: &str) -> RedisQueue {
        self.queue_with(name, QueueOptions::default())
    }

    pub fn queue_with(&self, name: &str, options: QueueOptions) -> RedisQueue {
        RedisQueue::new(self.conn.clone(), &self.prefix, name, options)
    }

    /// The backend these queues live on (what the runtime hands pools and loops).
    pub fn backend(&self) -> std::sync::Arc<RedisBackend> {
        std::sync::Arc::new(RedisBackend::new(
            &self.url,
            &self.prefix,
            self.conn.clone(),
        ))
    }

    pub fn start_pool(&self, q: &RedisQueue, registry: Registry, config: PoolConfig) -> PoolHandle {
        let shutdown = CancellationToken::new();
        let join = tokio::spawn(pool::run(
            self.backend(),
            std::sync::Arc::new(q.clone()),
            registry,
            config,
            shutdown.clone(),
        ));
        PoolHandle { shutdown, join }
    }
}

pub struct PoolHandle {
    pub shutdown: CancellationToken,
    pub join: JoinHandle<queue::Result<PoolReport>>,
}

impl PoolHandle {
    pub async fn stop(self) -> PoolReport {
        self.shutdown.cancel();
        self.join.await.expect("pool task").expect("pool run")
    }
}

/// A pool config for tests: small lease, quick idle wake-ups.
pub fn pool_config(concurrency: usize) -> PoolConfig {
    PoolConfig {
        concurrency,
        lease: Duration::from_secs(5),
        idle_wait: Duration::from_millis(200),
        shutdown_deadline: Duration::from_secs(5),
        ..PoolConfig::default()
    }
}

pub fn job(kind: &str, queue: &str, kwargs: serde_json::Value) -> Job {
    JobBuilder::new(kind, queue).arguments(kwargs).build()
}

/// Poll `cond` until it holds (a state check, not a fixed sleep); panics after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `chatter-worker run` process of the real binary.
pub struct WorkerProcess {
    pub child: Child,
    pub http: String,
}

impl WorkerProcess {
    pub fn spawn(url: &str, prefix: &str, queues: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatter-worker"));
        cmd.env("REDIS_URL", url).env("CW_PREFIX", prefix);
        Self::spawn_with(cmd, queues, extra)
    }

    /// A `run` process in the embedded mode on the SQLite file `db` (no Redis, no PostgreSQL).
    pub fn spawn_sqlite(db: &std::path::Path, queues: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatter-worker"));
        cmd.env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env("CW_SQLITE", db);
        // The embedded mode's local model: the copy the test script assembled (no download).
        if let Ok(dir) = std::env::var("CW_TEST_MODEL_DIR") {
            cmd.env("CW_MODEL_DIR", dir);
        }
        if let Some(dir) = db.parent() {
            cmd.current_dir(dir);
        }
        Self::spawn_with(cmd, queues, extra)
    }

    fn spawn_with(mut cmd: Command, queues: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        // The scheduler runs only where a test gives it schedules.
        let scheduler = if extra.contains(&"--schedules") {
            "false"
        } else {
            "true"
        };
        let child = cmd
            .args(["run", "--queues", queues, "--http-addr", &http])
            .args(extra)
            .env("CW_NO_SCHEDULER", scheduler)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn chatter-worker");
        Self { child, http }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// GET a path of this process's HTTP port once it answers 200; returns the body.
    pub async fn get(&self, path: &str) -> String {
        for _ in 0..500 {
            if let Ok((200, body)) = http_get(&self.http, path).await {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("http://{}{path} never answered 200", self.http);
    }

    /// Wait for exit; returns the exit status.
    pub async fn wait(mut self, limit: Duration) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < limit,
                "worker did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET: (status, body).
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(parse_response(&buf))
}

/// A raw HTTP response's status code (0 when there is none) and body.
pub fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
