//! The pool's background loops. Each retries Redis errors with capped, jittered backoff and
//! goes on when Redis is back: a loop never ends on an error, only on its stop signal.
use super::shared::{Claim, JobMeta, Shared};
use crate::backend::{self, Backend, Finish, FinishEntry, WorkSignal, backoff};
use crate::events::Event;
use crate::metrics;
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use chatter_jobs::{Job, ProgressUpdate};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most finish entries written in one round trip.
const FINISH_BATCH: usize = 2000;

async fn pause(d: Duration, stop: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.cancelled() => {}
    }
}

/// Claim jobs while permits are free; block on the wake-up token when the queue is empty.
pub(crate) async fn fetch(
    shared: Arc<Shared>,
    tx: mpsc::Sender<Task<Job>>,
    mut signal: Box<dyn WorkSignal>,
) {
    let cfg = &shared.config;
    let batch = cfg.fetch_batch.clamp(1, backend::MAX_FETCH);
    let mut retry = backoff();
    let mut backlog = false;
    loop {
        // With a backlog, wait for a quarter of the pool to free up so each fetch is a real batch.
        let min = if backlog {
            (cfg.concurrency / 4).clamp(1, batch)
        } else {
            1
        };
        tokio::select! {
            p = shared.permits.acquire_many(min as u32) => match p {
                Ok(p) => p.forget(),
                Err(_) => return,
            },
            _ = shared.stopping.cancelled() => return,
        }
        let mut n = min;
        while n < batch {
            match shared.permits.try_acquire() {
                Ok(p) => {
                    p.forget();
                    n += 1;
                }
                Err(_) => break,
            }
        }
        // Not cancelled mid-call: a claim whose reply was dropped would wait for its lease to expire.
        let result = shared.queue.fetch(&shared.worker, n, cfg.lease).await;
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                shared.permits.add_permits(n);
                metrics::record_redis_error(shared.queue.name(), "fetch");
                tracing::warn!(queue = shared.queue.name(), error = %e, "fetch failed; retrying");
                pause(
                    retry.next().unwrap_or(Duration::from_secs(1)),
                    &shared.stopping,
                )
                .await;
                continue;
            }
        };
        retry = backoff();
        if r.orphans > 0 {
            metrics::record_undecodable(shared.queue.name(), r.orphans);
            tracing::warn!(
                queue = shared.queue.name(),
                n = r.orphans,
                "dead-lettered ready entries that were not job ids"
            );
        }
        let got = r.jobs.len();
        shared.permits.add_permits(n - got);
        backlog = got == n;
        // Hold every claim before handing any to the worker: if the worker is gone mid-batch,
        // the rest must still be handed back at shutdown, not left running until their lease ends.
        for c in &r.jobs {
            shared.hold(c);
        }
        for c in r.jobs {
            match Job::decode(&c.payload) {
                Ok(job) => {
                    // Only jobs with an owner have events (see `Shared::publish`).
                    // Published before the handler can run, so `started` precedes the rest.
                    if job.created_by_user_id.is_some() {
                        let meta = shared.describe(&c.id, c.fence, &job);
                        shared.publish(vec![job_event(
                            shared.queue.name(),
                            &c.id,
                            &meta,
                            "job.started",
                            serde_json::json!({"status": "running", "attempt": c.attempt}),
                        )]);
                    }
                    let claim = Claim {
                        id: c.id,
                        fence: c.fence,
                        attempt: c.attempt,
                        due_ms: c.due_ms,
                    };
                    let task = TaskBuilder::new(job).data(claim).build();
                    // Capacity equals the permits, so this never waits; it fails only when the
                    // apalis worker is gone: stop fetching, the pool hands the claims back.
                    if tx.send(task).await.is_err() {
                        tracing::warn!(queue = shared.queue.name(), "worker gone; fetching stops");
                        shared.stopping.cancel();
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(queue = shared.queue.name(), id = %c.id, error = %e, "dead-lettering undecodable payload");
                    shared.undecodable(&c, format!("cannot decode payload: {e}"));
                }
            }
        }
        if got > 0 || shared.stopping.is_cancelled() {
            continue;
        }
        let now = crate::backend::now_ms();
        let wait = match (r.paused, r.next_due_ms) {
            (false, Some(due)) => {
                Duration::from_millis(due.saturating_sub(now).max(1)).min(cfg.idle_wait)
            }
            _ => cfg.idle_wait,
        };
        tokio::select! {
            w = signal.wait(wait) => if let Err(e) = w {
                metrics::record_redis_error(shared.queue.name(), "wait");
                tracing::warn!(queue = shared.queue.name(), error = %e, "blocking wait failed; retrying");
                pause(retry.next().unwrap_or(Duration::from_secs(1)), &shared.stopping).await;
            },
            _ = shared.stopping.cancelled() => return,
        }
    }
}

/// Write finishes in batches. On `closing`, drain what is queued, flush, and end. A failed write
/// is retried until it lands; only once `give_up` trips (the shutdown deadline, with Redis still
/// down) does it stop, leaving those claims to expire and be rescued (run again: at-least-once).
pub(crate) async fn finish(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<FinishEntry>,
    closing: CancellationToken,
    give_up: CancellationToken,
) {
    let mut batch: Vec<FinishEntry> = Vec::new();
    loop {
        let last = tokio::select! {
            m = rx.recv() => match m {
                Some(e) => { batch.push(e); false }
                None => true,
            },
            _ = closing.cancelled() => true,
        };
        while batch.len() < FINISH_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if last {
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        flush(&shared, &mut batch, &give_up).await;
        if last {
            return;
        }
    }
}

async fn flush(shared: &Shared, batch: &mut Vec<FinishEntry>, give_up: &CancellationToken) {
    if batch.is_empty() {
        return;
    }
    let mut retry = backoff();
    loop {
        match shared.queue.finish(batch).await {
            Ok(report) => {
                if shared.has_owned() {
                    shared.publish(finish_events(shared, batch, &report.stale_ids));
                }
                if report.stale > 0 {
                    metrics::record_stale(shared.queue.name(), report.stale);
                    tracing::warn!(
                        queue = shared.queue.name(),
                        n = report.stale,
                        "refused stale finishes (fence moved on)"
                    );
                }
                shared.release(batch);
                batch.clear();
                return;
            }
            Err(e) => {
                metrics::record_redis_error(shared.queue.name(), "finish");
                tracing::warn!(queue = shared.queue.name(), error = %e, n = batch.len(), "finish failed; retrying");
                if give_up.is_cancelled() {
                    batch.clear();
                    return;
                }
                pause(retry.next().unwrap_or(Duration::from_secs(1)), give_up).await;
            }
        }
    }
}

/// Heartbeats run on a thread and runtime of their own, with their own connection, so a handler
/// that hogs the async workers can never starve them and lose its leases.
pub(crate) fn spawn_heartbeat(
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    stop: CancellationToken,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("cw-heartbeat".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the heartbeat runtime");
                    return;
                }
            };
            rt.block_on(heartbeat(shared, backend, stop));
        })
        .unwrap_or_else(|e| panic!("cannot spawn the heartbeat thread: {e}"))
}

async fn heartbeat(shared: Arc<Shared>, backend: Arc<dyn Backend>, stop: CancellationToken) {
    let lease = shared.config.lease;
    let every = lease / 3;
    // Connections of this thread's runtime, not the pool's.
    let Some(own) = backend.detached(&stop).await else {
        return;
    };
    let queue = own.queue(shared.queue.name(), shared.queue.options().clone());
    loop {
        let held = shared.held_claims();
        match queue.heartbeat(&shared.worker, &held, lease, lease).await {
            Ok(r) => {
                if !r.lost.is_empty() {
                    tracing::warn!(
                        queue = queue.name(),
                        n = r.lost.len(),
                        "lost claims to the rescuer; stopping them"
                    );
                    shared.lost(&r.lost);
                }
                shared.cancel_ids(&r.cancel);
            }
            Err(e) => {
                metrics::record_redis_error(queue.name(), "heartbeat");
                tracing::warn!(queue = queue.name(), error = %e, "heartbeat failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Trip the token of a running job as soon as its cancellation is published. (Heartbeats also
/// report requested cancellations, so a message missed during a reconnect is not lost.)
pub(crate) async fn cancel_listener(
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    stop: CancellationToken,
) {
    let mut retry = backoff();
    while !stop.is_cancelled() {
        let subscribed = tokio::select! {
            r = backend.cancel_requests(shared.queue.name()) => r,
            _ = stop.cancelled() => return,
        };
        let mut messages = match subscribed {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cancel listener cannot subscribe; retrying");
                pause(retry.next().unwrap_or(Duration::from_secs(1)), &stop).await;
                continue;
            }
        };
        // The subscription lasts until the connection breaks; the backoff starts over only once
        // it delivered something, so a subscription that keeps ending at once is not a spin.
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(id) => {
                        retry = backoff();
                        shared.cancel_ids(&[id]);
                    }
                    None => break,
                },
                _ = stop.cancelled() => return,
            }
        }
        pause(retry.next().unwrap_or(Duration::from_secs(1)), &stop).await;
    }
}

/// Write handlers' progress reports (best effort: a lost report is superseded by the next).
pub(crate) async fn progress(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ProgressUpdate>,
    stop: CancellationToken,
) {
    loop {
        let p = tokio::select! {
            p = rx.recv() => match p { Some(p) => p, None => return },
            _ = stop.cancelled() => return,
        };
        match shared
            .queue
            .progress(&p.job_id, p.fence, p.progress, &p.message)
            .await
        {
            Ok(true) => {
                if let Some(meta) = shared.meta(&p.job_id, p.fence) {
                    let data = serde_json::json!({
                        "status": "running",
                        "progress": p.progress,
                        "message": p.message,
                    });
                    let e = job_event(shared.queue.name(), &p.job_id, &meta, "job.progress", data);
                    shared.publish(vec![e]);
                }
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "progress not recorded"),
        }
    }
}

/// A `job.*` event: Chatter's `{job_id, job_name, status, result | error}` plus the queue, kind
/// and `extra`'s fields.
fn job_event(queue: &str, id: &str, meta: &JobMeta, kind: &str, extra: serde_json::Value) -> Event {
    let mut data = serde_json::json!({
        "job_id": id,
        "job_name": meta.name,
        "function_name": meta.kind,
        "queue": queue,
    });
    if let (serde_json::Value::Object(d), serde_json::Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    Event::new(kind, meta.owner.as_deref(), data)
}

/// The events of finishes that were written (not the refused stale ones, not hand-backs).
fn finish_events(shared: &Shared, batch: &[FinishEntry], stale: &[String]) -> Vec<Event> {
    use serde_json::json;
    batch
        .iter()
        .filter(|e| !stale.contains(&e.id))
        .filter_map(|e| {
            let meta = shared.meta(&e.id, e.fence)?;
            let (kind, data) = match &e.finish {
                Finish::Completed { result } => {
                    let result = result
                        .as_deref()
                        .map(|r| serde_json::from_str(r).unwrap_or(json!(r)))
                        .unwrap_or(serde_json::Value::Null);
                    (
                        "job.completed",
                        json!({"status": "completed", "result": result}),
                    )
                }
                Finish::Retry { error, .. } => (
                    "job.retrying",
                    json!({"status": "retrying", "error": error}),
                ),
                Finish::Dead { error, .. } => {
                    ("job.failed", json!({"status": "failed", "error": error}))
                }
                Finish::Cancelled { reason } => (
                    "job.cancelled",
                    json!({"status": "cancelled", "error": reason}),
                ),
                Finish::Snooze { .. } | Finish::Requeue => return None,
            };
            Some(job_event(shared.queue.name(), &e.id, &meta, kind, data))
        })
        .collect()
}
