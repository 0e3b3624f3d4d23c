//! A worker's side of the queue: claim jobs, finish them, keep their leases, report progress.
//!
//! Every claim increments the job's fence; `finish`, `heartbeat` and `progress` carry the fence
//! they were given and change nothing when it is no longer current (the job was rescued and
//! handed to someone else). Such refusals are returned as counts for the stale-ack metric.
use super::{RedisQueue, Result, array, int, now_ms, scripts, text};
use crate::backend::model::*;
use redis::Value;
use std::time::Duration;

pub use crate::backend::MAX_FETCH;
/// Due scheduled / retrying jobs promoted per set per fetch.
const PROMOTE_PER_FETCH: usize = 1000;
/// Entries per finish call.
const FINISH_CHUNK: usize = 500;

impl RedisQueue {
    /// Claim up to `max` ready jobs (promoting due scheduled ones first) with a lease of `lease`.
    pub async fn fetch(&self, worker: &str, max: usize, lease: Duration) -> Result<FetchResult> {
        let k = &self.keys;
        let reply: Value = scripts::FETCH
            .key(k.ready_prefix())
            .key(k.scheduled())
            .key(k.retry())
            .key(k.leases())
            .key(k.job_prefix())
            .key(k.paused())
            .key(k.notify())
            .key(k.dead())
            .arg(max.clamp(1, MAX_FETCH))
            .arg(lease.as_millis() as u64)
            .arg(worker)
            .arg(PROMOTE_PER_FETCH)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let a = array(reply, "fetch")?;
        let mut out = FetchResult {
            paused: a.first().map(int) == Some(1),
            next_due_ms: a.get(1).map(int).filter(|d| *d >= 0).map(|d| d as u64),
            orphans: a.get(2).map(int).unwrap_or(0) as u64,
            jobs: Vec::with_capacity(a.len().saturating_sub(3) / 5),
        };
        let mut it = a.into_iter().skip(3);
        while let (Some(id), Some(payload), Some(fence), Some(attempt), Some(due)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        {
            let payload = match payload {
                Value::BulkString(b) => b,
                other => text(other).into_bytes(),
            };
            out.jobs.push(Claimed {
                id: text(id),
                payload,
                fence: int(&fence) as u64,
                attempt: int(&attempt) as u32,
                due_ms: int(&due) as u64,
            });
        }
        Ok(out)
    }

    /// Record how claimed jobs ended; entries with a stale fence are refused and counted.
    pub async fn finish(&self, entries: &[FinishEntry]) -> Result<FinishReport> {
        let mut report = FinishReport::default();
        let k = &self.keys;
        let retention = self.options.finished_retention.as_millis() as u64;
        for chunk in entries.chunks(FINISH_CHUNK) {
            let mut inv = scripts::FINISH.prepare_invoke();
            inv.key(k.job_prefix())
                .key(k.leases())
                .key(k.done())
                .key(k.dead())
                .key(k.retry())
                .key(k.scheduled())
                .key(k.ready_prefix())
                .key(k.notify())
                .key(k.owner_index_prefix())
                .arg(now_ms())
                .arg(retention);
            for e in chunk {
                let (action, a, b, c): (&str, &str, &str, u64) = match &e.finish {
                    Finish::Completed { result } => {
                        ("completed", result.as_deref().unwrap_or(""), "", 0)
                    }
                    Finish::Retry {
                        error,
                        history,
                        run_at_ms,
                    } => ("retry", error, history, *run_at_ms),
                    Finish::Dead { error, history } => ("dead", error, history, 0),
                    Finish::Cancelled { reason } => ("cancelled", reason, "", 0),
                    Finish::Snooze { run_at_ms } => ("snooze", "", "", *run_at_ms),
                    Finish::Requeue => ("requeue", "", "", 0),
                };
                inv.arg(&e.id).arg(e.fence).arg(action).arg(a).arg(b).arg(c);
            }
            let (applied, stale, ids): (u64, u64, Vec<String>) =
                inv.invoke_async(&mut self.conn.clone()).await?;
            report.applied += applied;
            report.stale += stale;
            report.stale_ids.extend(ids);
        }
        Ok(report)
    }

    /// Extend the leases of the jobs this worker holds and mark the worker alive until `alive_for`.
    pub async fn heartbeat(
        &self,
        worker: &str,
        held: &[(String, u64)],
        lease: Duration,
        alive_for: Duration,
    ) -> Result<HeartbeatReport> {
        let mut report = HeartbeatReport::default();
        // One call per bounded chunk; the worker registration rides on each.
        // An idle worker still sends one (empty) call: it keeps the worker registered as alive.
        let chunks: Vec<&[(String, u64)]> = if held.is_empty() {
            vec![&[]]
        } else {
            held.chunks(FINISH_CHUNK).collect()
        };
        for chunk in chunks {
            let mut inv = scripts::HEARTBEAT.prepare_invoke();
            inv.key(self.keys.leases())
                .key(self.keys.job_prefix())
                .key(self.keys.workers())
                .arg(lease.as_millis() as u64)
                .arg(worker)
                .arg(alive_for.as_millis() as u64);
            for (id, fence) in chunk {
                inv.arg(id).arg(*fence);
            }
            let (lost, cancel): (Vec<String>, Vec<String>) =
                inv.invoke_async(&mut self.conn.clone()).await?;
            let mut it = lost.into_iter();
            while let (Some(id), Some(fence)) = (it.next(), it.next()) {
                report.lost.push((id, fence.parse().unwrap_or(0)));
            }
            report.cancel.extend(cancel);
        }
        Ok(report)
    }

    /// Record a running job's progress and publish a `job.progress` event. False when stale.
    pub async fn progress(
        &self,
        id: &str,
        fence: u64,
        progress: u8,
        message: &str,
    ) -> Result<bool> {
        let event = crate::events::progress_body(self.name(), id, progress, message);
        let n: i64 = scripts::PROGRESS
            .key(self.keys.job(id))
            .arg(fence)
            .arg(progress)
            .arg(message)
            .arg(self.keys.events_channel())
            .arg(&event)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }
}
