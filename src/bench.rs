//! `chatter-worker bench queue`: no-op jobs through our Redis queue and, in the same run, through
//! apalis-redis 1.0.0, so the figures compare on the same machine and the same Redis.
//!
//! Four phases per system: bulk enqueue with no worker (enqueue/s), draining that backlog
//! (jobs/s), producer and workers running together (end-to-end jobs/s: N / (last finish − first
//! enqueue)), and enqueue→start latency on an idle pool (one job at a time; p50 / p99).
use crate::pool::{self, PoolConfig};
use crate::queue::{self, QueueOptions, RedisQueue};
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use chatter_jobs::{Job, JobBuilder, JobContext, JobError, Registry};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

const BENCH_KIND: &str = "bench_noop";
const PHASE_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub redis_url: String,
    pub jobs: usize,
    pub concurrency: usize,
    pub latency_samples: usize,
    /// Also run the same workload through apalis-redis 1.0.0.
    pub peer: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SystemResult {
    pub system: String,
    pub enqueue_per_s: Option<f64>,
    pub drain_per_s: Option<f64>,
    pub end_to_end_per_s: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Phases that did not finish within the time limit or failed, with the reason.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub jobs: usize,
    pub concurrency: usize,
    pub cpus: usize,
    pub results: Vec<SystemResult>,
    /// ours / peer for end-to-end jobs/s, when both finished.
    pub end_to_end_ratio: Option<f64>,
}

/// Counts handler runs; wakes the waiter at the target; reports start instants in latency mode.
struct Probe {
    done: AtomicU64,
    target: AtomicU64,
    reached: Notify,
    latency_mode: AtomicBool,
    starts: mpsc::UnboundedSender<Instant>,
}

impl Probe {
    fn hit(&self) {
        if self.latency_mode.load(Ordering::Relaxed) {
            let _ = self.starts.send(Instant::now());
        }
        let n = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }
    fn expect(&self, n: u64) {
        self.done.store(0, Ordering::Release);
        self.target.store(n, Ordering::Release);
    }
    async fn wait(&self) -> bool {
        let reached = async {
            loop {
                if self.done.load(Ordering::Acquire) >= self.target.load(Ordering::Acquire) {
                    return;
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), self.reached.notified()).await;
            }
        };
        tokio::time::timeout(PHASE_LIMIT, reached).await.is_ok()
    }
}

fn per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn quantiles(h: &Histogram<u64>) -> (f64, f64) {
    (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    )
}

pub async fn run(o: BenchOptions) -> Result<BenchReport, BoxDynError> {
    let mut results = vec![ours(&o).await?];
    if o.peer {
        results.push(apalis_redis_peer(&o).await?);
    }
    let ratio = match (
        results.first().and_then(|r| r.end_to_end_per_s),
        results.get(1).and_then(|r| r.end_to_end_per_s),
    ) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ok(BenchReport {
        jobs: o.jobs,
        concurrency: o.concurrency,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        results,
        end_to_end_ratio: ratio,
    })
}

async fn delete_prefix(url: &str, pattern: &str) -> Result<(), BoxDynError> {
    let mut conn = queue::connect(url).await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn jobs(n: usize, queue: &str) -> Vec<Job> {
    (0..n)
        .map(|_| JobBuilder::new(BENCH_KIND, queue).build())
        .collect()
}

async fn ours(o: &BenchOptions) -> Result<SystemResult, BoxDynError> {
    let prefix = format!("bench-{}", ulid::Ulid::new());
    let qname = "bench";
    let (tx, mut starts) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        done: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
        latency_mode: AtomicBool::new(false),
        starts: tx,
    });
    let mut registry = Registry::default();
    let p = probe.clone();
    registry.register(BENCH_KIND, qname, move |_job: Job, _ctx: JobContext| {
        p.hit();
        async { Ok::<Value, JobError>(Value::Null) }
    });
    let conn = queue::connect(&o.redis_url).await?;
    let q = RedisQueue::new(conn, &prefix, qname, QueueOptions::default());
    let mut r = SystemResult {
        system: "chatter-worker".into(),
        ..Default::default()
    };

    // 1. Bulk enqueue, no worker running.
    let batch = jobs(o.jobs, qname);
    let t = Instant::now();
    for chunk in batch.chunks(10_000) {
        q.enqueue_batch(chunk).await?;
    }
    r.enqueue_per_s = Some(per_s(o.jobs, t.elapsed()));

    // 2. Drain the backlog.
    probe.expect(o.jobs as u64);
    let shutdown = CancellationToken::new();
    let config = PoolConfig {
        concurrency: o.concurrency,
        fetch_batch: 200,
        ..PoolConfig::default()
    };
    let t = Instant::now();
    let pool = tokio::spawn(pool::run(
        q.clone(),
        o.redis_url.clone(),
        registry,
        config,
        shutdown.clone(),
    ));
    if probe.wait().await {
        r.drain_per_s = Some(per_s(o.jobs, t.elapsed()));
    } else {
        r.failures
            .push(format!("drain did not finish in {PHASE_LIMIT:?}"));
    }

    // 3. Producer and workers together.
    let batch = jobs(o.jobs, qname);
    probe.expect(o.jobs as u64);
    let t = Instant::now();
    for chunk in batch.chunks(1000) {
        q.enqueue_batch(chunk).await?;
    }
    if probe.wait().await {
        r.end_to_end_per_s = Some(per_s(o.jobs, t.elapsed()));
    } else {
        r.failures
            .push(format!("end-to-end did not finish in {PHASE_LIMIT:?}"));
    }

    // 4. Enqueue -> start on an idle pool.
    let mut h = Histogram::<u64>::new(3)?;
    probe.latency_mode.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for job in jobs(o.latency_samples, qname) {
        let t = Instant::now();
        q.enqueue(&job).await?;
        match tokio::time::timeout(Duration::from_secs(10), starts.recv()).await {
            Ok(Some(started)) => h.record(started.duration_since(t).as_micros() as u64)?,
            _ => {
                r.failures.push("latency sample timed out".into());
                break;
            }
        }
    }
    let (p50, p99) = quantiles(&h);
    r.latency_p50_ms = Some(p50);
    r.latency_p99_ms = Some(p99);
    shutdown.cancel();
    let _ = pool.await;
    delete_prefix(&o.redis_url, &format!("{prefix}:*")).await?;
    Ok(r)
}

async fn apalis_redis_peer(o: &BenchOptions) -> Result<SystemResult, BoxDynError> {
    use apalis_redis::{Config, RedisStorage};
    let qname = format!("bench-apalis-{}", ulid::Ulid::new());
    let (tx, mut starts) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        done: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
        latency_mode: AtomicBool::new(false),
        starts: tx,
    });
    let conn = apalis_redis::connect(o.redis_url.as_str()).await?;
    let config = Config::default().queue(&qname).batch_size(200);
    let mut storage = RedisStorage::<u64>::new(conn).with_config(config);
    let mut r = SystemResult {
        system: "apalis-redis 1.0.0".into(),
        ..Default::default()
    };

    let t = Instant::now();
    for chunk in (0..o.jobs as u64).collect::<Vec<_>>().chunks(10_000) {
        storage.push_bulk(chunk.to_vec()).await?;
    }
    r.enqueue_per_s = Some(per_s(o.jobs, t.elapsed()));

    probe.expect(o.jobs as u64);
    let stop = CancellationToken::new();
    let p = probe.clone();
    let worker = WorkerBuilder::new(format!("{qname}-worker"))
        .backend(storage.clone())
        .concurrency(o.concurrency)
        .build(move |_n: u64| {
            let p = p.clone();
            async move {
                p.hit();
                Ok::<(), BoxDynError>(())
            }
        });
    let s = stop.clone();
    let t = Instant::now();
    let handle = tokio::spawn(worker.run_until(async move {
        s.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    if probe.wait().await {
        r.drain_per_s = Some(per_s(o.jobs, t.elapsed()));
    } else {
        r.failures
            .push(format!("drain did not finish in {PHASE_LIMIT:?}"));
    }

    probe.expect(o.jobs as u64);
    let t = Instant::now();
    for chunk in (0..o.jobs as u64).collect::<Vec<_>>().chunks(1000) {
        storage.push_bulk(chunk.to_vec()).await?;
    }
    if probe.wait().await {
        r.end_to_end_per_s = Some(per_s(o.jobs, t.elapsed()));
    } else {
        r.failures
            .push(format!("end-to-end did not finish in {PHASE_LIMIT:?}"));
    }

    let mut h = Histogram::<u64>::new(3)?;
    probe.latency_mode.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..o.latency_samples as u64 {
        let t = Instant::now();
        storage.push(i).await?;
        match tokio::time::timeout(Duration::from_secs(10), starts.recv()).await {
            Ok(Some(started)) => h.record(started.duration_since(t).as_micros() as u64)?,
            _ => {
                r.failures.push("latency sample timed out".into());
                break;
            }
        }
    }
    if !h.is_empty() {
        let (p50, p99) = quantiles(&h);
        r.latency_p50_ms = Some(p50);
        r.latency_p99_ms = Some(p99);
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    delete_prefix(&o.redis_url, &format!("*{qname}*")).await?;
    Ok(r)
}
