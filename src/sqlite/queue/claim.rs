//! A worker's side of the embedded queue (`fetch.lua`, `heartbeat.lua`, `progress.lua`; the
//! finish is `finish.rs`): claim jobs (each claim increments the fence and sets a lease),
//! extend leases, record progress, register workers. A call carrying a fence that is no longer
//! current changes nothing (a heartbeat reports the claim lost, a progress returns false).
use super::{CHUNK, SqliteQueue, now, reserve_back};
use crate::backend::{Claimed, FetchResult, HeartbeatReport, MAX_FETCH, Result};
use sqlx::Row;
use std::time::Duration;

/// Due scheduled / retrying jobs promoted per fetch.
const PROMOTE_PER_FETCH: i64 = 1000;

impl SqliteQueue {
    /// One transaction: promote due scheduled / retrying jobs to the back of the ready line,
    /// then claim up to `max` ready jobs, highest priority first, FIFO within a priority.
    /// A payload that does not decode is handed out like any other (the pool dead-letters it).
    pub async fn fetch(&self, worker: &str, max: usize, lease: Duration) -> Result<FetchResult> {
        let at = now();
        // An idle queue is answered from a read, without the file's write lock (idle fetchers
        // of every process look every ~250 ms); new work after this read wakes or is polled.
        let work: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM cw_jobs WHERE queue = ?1 AND status = 'pending') \
             OR EXISTS (SELECT 1 FROM cw_jobs WHERE queue = ?1 \
             AND status IN ('scheduled', 'retrying') AND run_at_ms <= ?2)",
        )
        .bind(&self.name)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        if !work {
            let mut tx = self.pool.begin().await?;
            let out = FetchResult {
                paused: is_paused(&mut tx, &self.name).await?,
                next_due_ms: next_due(&mut tx, &self.name).await?,
                ..FetchResult::default()
            };
            tx.commit().await?;
            return Ok(out);
        }
        let mut tx = self.write().await?;
        if is_paused(&mut tx, &self.name).await? {
            let next_due_ms = next_due(&mut tx, &self.name).await?;
            tx.commit().await?;
            return Ok(FetchResult {
                paused: true,
                next_due_ms,
                ..FetchResult::default()
            });
        }
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status IN ('scheduled', 'retrying') \
             AND run_at_ms <= ?2 ORDER BY run_at_ms, id LIMIT ?3",
        )
        .bind(&self.name)
        .bind(at)
        .bind(PROMOTE_PER_FETCH)
        .fetch_all(&mut *tx)
        .await?;
        if !due.is_empty() {
            let mut seq = reserve_back(&mut tx, &self.name, due.len()).await?;
            for id in &due {
                sqlx::query(
                    "UPDATE cw_jobs SET status = 'pending', seq = ?3 WHERE queue = ?1 AND id = ?2",
                )
                .bind(&self.name)
                .bind(id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                seq += 1;
            }
        }
        let rows = sqlx::query(
            "UPDATE cw_jobs SET status = 'running', fence = fence + 1, attempt = attempt + 1, \
             worker = ?3, started_ms = ?4, lease_until_ms = ?5 \
             WHERE queue = ?1 AND id IN (SELECT id FROM cw_jobs WHERE queue = ?1 \
             AND status = 'pending' ORDER BY priority, seq LIMIT ?2) \
             RETURNING id, CAST(payload AS BLOB) AS payload, fence, attempt, \
             max(enqueued_ms, run_at_ms) AS due, priority, seq",
        )
        .bind(&self.name)
        .bind(max.clamp(1, MAX_FETCH) as i64)
        .bind(worker)
        .bind(at)
        .bind(at.saturating_add(super::ms(lease)))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let order: (i64, i64) = (r.try_get("priority")?, r.try_get("seq")?);
            claimed.push((
                order,
                Claimed {
                    id: r.try_get("id")?,
                    payload: r
                        .try_get::<Option<Vec<u8>>, _>("payload")?
                        .unwrap_or_default(),
                    fence: r.try_get::<i64, _>("fence")?.max(0) as u64,
                    attempt: r.try_get::<i64, _>("attempt")?.clamp(0, u32::MAX as i64) as u32,
                    due_ms: r.try_get::<i64, _>("due")?.max(0) as u64,
                },
            ));
        }
        claimed.sort_by_key(|(order, _)| *order);
        let mut out = FetchResult {
            jobs: claimed.into_iter().map(|(_, c)| c).collect(),
            ..FetchResult::default()
        };
        let more = if out.jobs.is_empty() {
            out.next_due_ms = next_due(&mut tx, &self.name).await?;
            false
        } else {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM cw_jobs WHERE queue = ?1 AND status = 'pending')",
            )
            .bind(&self.name)
            .fetch_one(&mut *tx)
            .await?
        };
        tx.commit().await?;
        if more {
            // Work remains: another idle fetcher of this process joins in.
            self.wake();
        }
        Ok(out)
    }

    /// Extend the leases `held` still holds, report lost claims (fence moved on) and cancel
    /// requests, and mark `worker` alive for `alive_for`.
    pub async fn heartbeat(
        &self,
        worker: &str,
        held: &[(String, u64)],
        lease: Duration,
        alive_for: Duration,
    ) -> Result<HeartbeatReport> {
        let mut report = HeartbeatReport::default();
        let chunks: Vec<&[(String, u64)]> = if held.is_empty() {
            vec![&[]]
        } else {
            held.chunks(CHUNK).collect()
        };
        for chunk in chunks {
            let at = now();
            let deadline = at.saturating_add(super::ms(lease));
            let mut tx = self.write().await?;
            for (id, fence) in chunk {
                let row = sqlx::query(
                    "SELECT status, fence, cancel_requested FROM cw_jobs \
                     WHERE queue = ?1 AND id = ?2",
                )
                .bind(&self.name)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(r) = row else { continue };
                let status: String = r.try_get("status")?;
                let current: i64 = r.try_get("fence")?;
                if current != *fence as i64 {
                    report.lost.push((id.clone(), *fence));
                } else if status == "running" {
                    sqlx::query(
                        "UPDATE cw_jobs SET lease_until_ms = ?3 WHERE queue = ?1 AND id = ?2",
                    )
                    .bind(&self.name)
                    .bind(id)
                    .bind(deadline)
                    .execute(&mut *tx)
                    .await?;
                    if r.try_get::<i64, _>("cancel_requested")? == 1 {
                        report.cancel.push(id.clone());
                    }
                }
            }
            sqlx::query(
                "INSERT INTO cw_workers (queue, worker, alive_until_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (queue, worker) DO UPDATE SET alive_until_ms = excluded.alive_until_ms",
            )
            .bind(&self.name)
            .bind(worker)
            .bind(at.saturating_add(super::ms(alive_for)))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(report)
    }

    /// Record a running job's progress and publish the `job.progress` event
    /// (`crate::events::progress_body`) on this file's live channel. False when the fence is stale.
    pub async fn progress(
        &self,
        id: &str,
        fence: u64,
        progress: u8,
        message: &str,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE cw_jobs SET progress = ?4, progress_message = ?5 \
             WHERE queue = ?1 AND id = ?2 AND fence = ?3 AND status = 'running'",
        )
        .bind(&self.name)
        .bind(id)
        .bind(fence as i64)
        .bind(i64::from(progress))
        .bind(message)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Ok(false);
        }
        let event = crate::events::progress_body(&self.name, id, progress, message);
        // No receiver is not an error: the live channel keeps nothing.
        let _ = crate::sqlite::live(&self.path).send(event);
        Ok(true)
    }

    /// Remove a stopped worker from the live-worker set.
    pub async fn deregister_worker(&self, worker: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM cw_workers WHERE queue = ?1 AND worker = ?2")
            .bind(&self.name)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Whether `queue` is paused.
async fn is_paused(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, queue: &str) -> Result<bool> {
    let paused: Option<Option<i64>> =
        sqlx::query_scalar("SELECT paused_ms FROM cw_queues WHERE name = ?1")
            .bind(queue)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(paused.flatten().is_some())
}

/// The run-at of the earliest scheduled or retrying job of `queue`.
pub(super) async fn next_due(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    queue: &str,
) -> Result<Option<u64>> {
    let d: Option<i64> = sqlx::query_scalar(
        "SELECT min(run_at_ms) FROM cw_jobs WHERE queue = ?1 \
         AND status IN ('scheduled', 'retrying')",
    )
    .bind(queue)
    .fetch_one(&mut **tx)
    .await?;
    Ok(d.map(|d| d.max(0) as u64))
}
