//! `bench queue`'s peer: the same workload through apalis-redis 1.0.0 on the same Redis (a
//! backlog drained, the bounded end-to-end run, idle latency), each phase on a fresh queue.
use super::{
    BenchOptions, PEER_HEARTBEAT, Probe, Subject, SystemResult, end_to_end, latency, per_s, probe,
};
use crate::queue;
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

pub(super) async fn apalis_redis_peer(o: &BenchOptions) -> Result<SystemResult, BoxDynError> {
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
