//! `chatter-worker bench queue`: no-op jobs through our Redis queue and, in the same run, through
//! apalis-redis 1.0.0, so the figures compare on the same machine and the same Redis.
//! `--backend sqlite` runs our workload on the embedded backend (a SQLite file) instead, and
//! `--backend both` runs Redis then SQLite and reports them side by side (`own.rs`); our phases
//! go through `Arc<dyn Backend>` / `Arc<dyn Queue>`, the peer stays Redis-only.
//!
//! Four phases per system: bulk enqueue of N with no worker (enqueue/s); draining that backlog
//! (jobs/s); a producer and the workers together, the producer keeping at most 5,000 jobs
//! outstanding (end-to-end jobs/s = N / (last finish − first enqueue)); and enqueue→start latency
//! on an idle pool, one job at a time (p50 / p99). apalis-redis 1.0.0 promotes every due job with
//! one Lua `unpack`, so it cannot drain a backlog above ~8k: its drain phase reports that failure,
//! and the bounded end-to-end phase is the one both systems can run.
mod own;

pub use super::args::QueueBenchBackend;
pub use own::Comparison;

use crate::backend::Queue;
use crate::pool::{self, PoolConfig};
use crate::queue;
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use chatter_jobs::{Job, JobBuilder, JobContext, JobError, Registry};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

const BENCH_KIND: &str = "bench_noop";
const PHASE_LIMIT: Duration = Duration::from_secs(300);
/// Most jobs the end-to-end producer keeps enqueued but not yet run.
const OUTSTANDING: u64 = 5000;
/// apalis-redis fetches again after an empty fetch only on its heartbeat (30 s by default), so
/// an idle worker would take up to 30 s to start a job; the bench tunes it to 1 s, as a user would.
const PEER_HEARTBEAT: Duration = Duration::from_secs(1);
/// Jobs per producer call in the end-to-end phase.
const PRODUCER_BATCH: usize = 500;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub redis_url: String,
    pub jobs: usize,
    pub concurrency: usize,
    pub latency_samples: usize,
    /// Also run the same workload through apalis-redis 1.0.0 (with the Redis backend only).
    pub peer: bool,
    /// Our backend(s) measured.
    pub backend: QueueBenchBackend,
    /// The SQLite file (default: a temporary one).
    pub sqlite_path: Option<PathBuf>,
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
    /// Our backend(s) measured.
    pub backend: QueueBenchBackend,
    pub results: Vec<SystemResult>,
    /// ours (Redis) / peer for end-to-end jobs/s, when both finished.
    pub end_to_end_ratio: Option<f64>,
    /// `--backend both`: every figure on Redis and on SQLite, with sqlite / redis.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sqlite_vs_redis: Vec<Comparison>,
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
    fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }
    /// Wait for the target; Err says why not (time limit, or the worker died).
    async fn wait(&self, alive: impl Fn() -> bool) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.done() >= self.target.load(Ordering::Acquire) {
                return Ok(());
            }
            if !alive() {
                return Err(format!(
                    "worker stopped after {} of {} jobs",
                    self.done(),
                    self.target.load(Ordering::Acquire)
                ));
            }
            if start.elapsed() > PHASE_LIMIT {
                return Err(format!(
                    "not finished in {PHASE_LIMIT:?} ({} done)",
                    self.done()
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), self.reached.notified()).await;
        }
    }
}

fn probe() -> (Arc<Probe>, mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let p = Probe {
        done: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        reached: Notify::new(),
        latency_mode: AtomicBool::new(false),
        starts: tx,
    };
    (Arc::new(p), rx)
}

/// A queue system under test: how the bench enqueues into it.
trait Subject {
    async fn push(&mut self, n: usize) -> Result<(), BoxDynError>;
}

/// Enqueue N in calls of `chunk`, keeping at most `outstanding` jobs not yet run.
async fn produce<S: Subject>(
    s: &mut S,
    p: &Probe,
    n: usize,
    chunk: usize,
    outstanding: u64,
) -> Result<(), BoxDynError> {
    let mut pushed = 0usize;
    while pushed < n {
        while pushed as u64 >= p.done() + outstanding {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let k = chunk.min(n - pushed);
        s.push(k).await?;
        pushed += k;
    }
    Ok(())
}

async fn end_to_end<S: Subject>(
    s: &mut S,
    p: &Probe,
    n: usize,
    alive: impl Fn() -> bool,
    r: &mut SystemResult,
) -> Result<(), BoxDynError> {
    p.expect(n as u64);
    let t = Instant::now();
    produce(s, p, n, PRODUCER_BATCH, OUTSTANDING).await?;
    match p.wait(alive).await {
        Ok(()) => r.end_to_end_per_s = Some(per_s(n, t.elapsed())),
        Err(e) => r.failures.push(format!("end-to-end: {e}")),
    }
    Ok(())
}

/// One job at a time on an idle pool: enqueue call start to handler start.
async fn latency<S: Subject>(
    s: &mut S,
    p: &Probe,
    starts: &mut mpsc::UnboundedReceiver<Instant>,
    samples: usize,
    r: &mut SystemResult,
) -> Result<(), BoxDynError> {
    let mut h = Histogram::<u64>::new(3)?;
    p.latency_mode.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_millis(100)).await;
    while starts.try_recv().is_ok() {}
    for _ in 0..samples {
        let t = Instant::now();
        s.push(1).await?;
        match tokio::time::timeout(Duration::from_secs(10), starts.recv()).await {
            Ok(Some(started)) => {
                h.record(started.saturating_duration_since(t).as_micros() as u64)?
            }
            _ => {
                r.failures
                    .push("latency: a sample did not start within 10 s".into());
                break;
            }
        }
    }
    if !h.is_empty() {
        let (p50, p99) = quantiles(&h);
        r.latency_p50_ms = Some(p50);
        r.latency_p99_ms = Some(p99);
    }
    Ok(())
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
    let mut results = Vec::new();
    if o.backend.redis() {
        results.push(ours(&o, own::Own::Redis).await?);
    }
    if o.backend.sqlite() {
        results.push(ours(&o, own::Own::Sqlite).await?);
    }
    // apalis-redis is compared with our Redis backend only.
    if o.peer && o.backend.redis() {
        results.push(apalis_redis_peer(&o).await?);
    }
    let find = |system: &str| results.iter().find(|r| r.system == system);
    let redis = find(own::Own::Redis.system());
    let ratio = match (
        redis.and_then(|r| r.end_to_end_per_s),
        results
            .iter()
            .find(|r| r.system.starts_with("apalis"))
            .and_then(|r| r.end_to_end_per_s),
    ) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let sqlite_vs_redis = match (redis, find(own::Own::Sqlite.system())) {
        (Some(r), Some(s)) => own::compare(r, s),
        _ => Vec::new(),
    };
    Ok(BenchReport {
        jobs: o.jobs,
        concurrency: o.concurrency,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        backend: o.backend,
        results,
        end_to_end_ratio: ratio,
        sqlite_vs_redis,
    })
}

struct Ours(Arc<dyn Queue>);

impl Subject for Ours {
    async fn push(&mut self, n: usize) -> Result<(), BoxDynError> {
        let jobs: Vec<Job> = (0..n)
            .map(|_| JobBuilder::new(BENCH_KIND, self.0.name()).build())
            .collect();
        self.0.enqueue_batch(&jobs).await?;
        Ok(())
    }
}

async fn ours(o: &BenchOptions, which: own::Own) -> Result<SystemResult, BoxDynError> {
    let (probe, mut starts) = probe();
    let opened = own::open(o, which).await?;
    let mut registry = Registry::default();
    let p = probe.clone();
    registry.register(
        BENCH_KIND,
        opened.queue.name(),
        move |_job: Job, _ctx: JobContext| {
            p.hit();
            async { Ok::<Value, JobError>(Value::Null) }
        },
    );
    let mut s = Ours(opened.queue.clone());
    let mut r = SystemResult {
        system: which.system().into(),
        ..Default::default()
    };

    let t = Instant::now();
    for chunk in 0..o.jobs.div_ceil(10_000) {
        s.push(10_000.min(o.jobs - chunk * 10_000)).await?;
    }
    r.enqueue_per_s = Some(per_s(o.jobs, t.elapsed()));

    probe.expect(o.jobs as u64);
    let shutdown = CancellationToken::new();
    let config = PoolConfig {
        concurrency: o.concurrency,
        fetch_batch: 200,
        ..PoolConfig::default()
    };
    let t = Instant::now();
    let pool = tokio::spawn(pool::run(
        opened.backend.clone(),
        opened.queue.clone(),
        registry,
        config,
        shutdown.clone(),
    ));
    match probe.wait(|| !pool.is_finished()).await {
        Ok(()) => r.drain_per_s = Some(per_s(o.jobs, t.elapsed())),
        Err(e) => r.failures.push(format!("drain: {e}")),
    }
    end_to_end(&mut s, &probe, o.jobs, || !pool.is_finished(), &mut r).await?;
    latency(&mut s, &probe, &mut starts, o.latency_samples, &mut r).await?;
    shutdown.cancel();
    let _ = pool.await;
    drop(s);
    opened.cleanup().await?;
    Ok(r)
}

struct Peer(apalis_redis::RedisStorage<u64>);

impl Subject for Peer {
    async fn push(&mut self, n: usize) -> Result<(), BoxDynError> {
        self.0.push_bulk((0..n as u64).collect()).await?;
        Ok(())
    }
}

type PeerWorker = tokio::task::JoinHandle<Result<(), apalis_core::error::WorkerError>>;

/// A fresh apalis-redis queue (and its name, for clean-up).
async fn peer_queue(o: &BenchOptions) -> Result<(Peer, String), BoxDynError> {
    use apalis_redis::{Config, RedisStorage};
    let qname = format!("bench-apalis-{}", ulid::Ulid::new());
    let conn = apalis_redis::connect(o.redis_url.as_str()).await?;
    let config = Config::default()
        .queue(&qname)
        .batch_size(200)
        .heartbeat_interval(PEER_HEARTBEAT);
    Ok((
        Peer(RedisStorage::<u64>::new(conn).with_config(config)),
        qname,
    ))
}

/// An apalis-redis worker of concurrency C over `peer`, running until `stop` trips.
fn peer_worker(
    o: &BenchOptions,
    peer: &Peer,
    qname: &str,
    p: Arc<Probe>,
    stop: &CancellationToken,
) -> PeerWorker {
    let worker = WorkerBuilder::new(format!("{qname}-worker"))
        .backend(peer.0.clone())
        .concurrency(o.concurrency)
        .build(move |_n: u64| {
            let p = p.clone();
            async move {
                p.hit();
                Ok::<(), BoxDynError>(())
            }
        });
    let s = stop.clone();
    tokio::spawn(worker.run_until(async move {
        s.cancelled().await;
        Ok::<(), std::io::Error>(())
    }))
}

async fn apalis_redis_peer(o: &BenchOptions) -> Result<SystemResult, BoxDynError> {
    let (probe, mut starts) = probe();
    let mut r = SystemResult {
        system: "apalis-redis 1.0.0".into(),
        ..Default::default()
    };

    // Backlog: enqueue N with no worker, then start one and drain.
    let (mut s, qname) = peer_queue(o).await?;
    let t = Instant::now();
    for chunk in 0..o.jobs.div_ceil(10_000) {
        s.push(10_000.min(o.jobs - chunk * 10_000)).await?;
    }
    r.enqueue_per_s = Some(per_s(o.jobs, t.elapsed()));
    probe.expect(o.jobs as u64);
    let stop = CancellationToken::new();
    let t = Instant::now();
    let handle = peer_worker(o, &s, &qname, probe.clone(), &stop);
    match probe.wait(|| !handle.is_finished()).await {
        Ok(()) => r.drain_per_s = Some(per_s(o.jobs, t.elapsed())),
        Err(e) => r.failures.push(format!("drain: {e}")),
    }
    stop.cancel();
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(10), handle).await {
        r.failures.push(format!("drain worker error: {e}"));
    }
    queue::delete_matching(&o.redis_url, &format!("*{qname}*")).await?;

    // Bounded end-to-end, then idle latency, each on a fresh queue and worker.
    let (mut s, qname) = peer_queue(o).await?;
    let stop = CancellationToken::new();
    let handle = peer_worker(o, &s, &qname, probe.clone(), &stop);
    end_to_end(&mut s, &probe, o.jobs, || !handle.is_finished(), &mut r).await?;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    queue::delete_matching(&o.redis_url, &format!("*{qname}*")).await?;
    let (mut s, qname) = peer_queue(o).await?;
    let stop = CancellationToken::new();
    let handle = peer_worker(o, &s, &qname, probe.clone(), &stop);
    latency(&mut s, &probe, &mut starts, o.latency_samples, &mut r).await?;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    queue::delete_matching(&o.redis_url, &format!("*{qname}*")).await?;
    Ok(r)
}
