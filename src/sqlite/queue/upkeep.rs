//! Upkeep of the embedded queue, safe in every process at once (`rescue.lua`, `trim.lua`,
//! `sweep.lua`, `stats.lua`): each step is one transaction over a bounded number of rows.
use super::{SqliteQueue, now, reserve_front};
use crate::backend::{QueueStats, RescueReport, Result, SweepReport, TrimReport};
use chatter_jobs::Job;
use sqlx::Row;
use std::time::Duration;

/// Rows the sweep reads per transaction.
const SWEEP_STEP: i64 = 200;

impl SqliteQueue {
    /// Hand back up to `limit` jobs whose lease expired: requeued at the front, dead-lettered
    /// when their attempts are spent, cancelled when cancellation was requested. The fence
    /// moves on so the silent holder's late finish is refused; the history records the loss.
    pub async fn rescue(&self, limit: usize) -> Result<RescueReport> {
        let mut report = RescueReport::default();
        let at = now();
        let retention = self.retention_ms();
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, attempt, max_attempts, worker, cancel_requested FROM cw_jobs \
             WHERE queue = ?1 AND status = 'running' AND lease_until_ms <= ?2 \
             ORDER BY lease_until_ms LIMIT ?3",
        )
        .bind(&self.name)
        .bind(at)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let id: String = r.try_get("id")?;
            let attempt: i64 = r.try_get("attempt")?;
            let max_attempts: i64 = r.try_get("max_attempts")?;
            let worker: Option<String> = r.try_get("worker").ok().flatten();
            let worker = worker.unwrap_or_else(|| "?".into());
            let err = format!("lease expired: worker {worker} stopped heartbeating");
            let entry = serde_json::json!({
                "attempt": attempt, "error": err, "at": at, "worker": worker,
            })
            .to_string();
            sqlx::query(concat!(
                "UPDATE cw_jobs SET fence = fence + 1, lease_until_ms = NULL, ",
                history_append!("3"),
                " WHERE queue = ?1 AND id = ?2"
            ))
            .bind(&self.name)
            .bind(&id)
            .bind(entry)
            .execute(&mut *tx)
            .await?;
            let (sql, error): (&str, String) = if r.try_get::<i64, _>("cancel_requested")? == 1 {
                report.cancelled += 1;
                (
                    "UPDATE cw_jobs SET status = 'cancelled', finished_ms = ?3, error = ?4 \
                     WHERE queue = ?1 AND id = ?2",
                    "cancelled".into(),
                )
            } else if attempt >= max_attempts {
                report.dead += 1;
                (
                    "UPDATE cw_jobs SET status = 'failed', finished_ms = ?3, error = ?4 \
                     WHERE queue = ?1 AND id = ?2",
                    format!("{err} (attempt {attempt} of {max_attempts})"),
                )
            } else {
                report.requeued += 1;
                let seq = reserve_front(&mut tx, &self.name).await?;
                sqlx::query(
                    "UPDATE cw_jobs SET status = 'pending', seq = ?3 WHERE queue = ?1 AND id = ?2",
                )
                .bind(&self.name)
                .bind(&id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                continue;
            };
            sqlx::query(sql)
                .bind(&self.name)
                .bind(&id)
                .bind(at)
                .bind(error)
                .execute(&mut *tx)
                .await?;
            if sql.contains("'cancelled'") {
                self.drop_finished(&mut tx, &id, retention).await?;
            }
        }
        tx.commit().await?;
        if report.requeued > 0 {
            self.wake();
        }
        Ok(report)
    }

    /// Retention: finished records past `finished_retention`, then beyond `max_finished`, and
    /// dead letters beyond `max_dead`, oldest first, at most `limit` per kind; expired
    /// workers and idempotency keys go too.
    pub async fn trim(&self, limit: usize) -> Result<TrimReport> {
        let o = &self.options;
        self.trim_with(self.retention_ms(), o.max_finished, o.max_dead, limit)
            .await
    }

    /// Delete every finished record now (and every dead letter when `dead`), in bounded steps.
    pub async fn cleanup(&self, dead: bool) -> Result<TrimReport> {
        let mut total = TrimReport::default();
        loop {
            let r = self
                .trim_with(0, 0, if dead { 0 } else { u64::MAX }, 1000)
                .await?;
            total.finished_removed += r.finished_removed;
            total.dead_removed += r.dead_removed;
            if r.finished_removed == 0 && r.dead_removed == 0 {
                return Ok(total);
            }
        }
    }

    async fn trim_with(
        &self,
        retention_ms: i64,
        max_finished: u64,
        max_dead: u64,
        limit: usize,
    ) -> Result<TrimReport> {
        let at = now();
        let limit = limit as i64;
        let mut tx = self.write().await?;
        let mut finished_removed = sqlx::query(
            "DELETE FROM cw_jobs WHERE rowid IN (SELECT rowid FROM cw_jobs WHERE queue = ?1 \
             AND status IN ('completed', 'cancelled') AND finished_ms <= ?2 \
             ORDER BY finished_ms LIMIT ?3)",
        )
        .bind(&self.name)
        .bind(at.saturating_sub(retention_ms))
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cw_jobs WHERE queue = ?1 \
             AND status IN ('completed', 'cancelled')",
        )
        .bind(&self.name)
        .fetch_one(&mut *tx)
        .await?;
        let over = (finished as i128 - max_finished as i128).clamp(0, limit as i128) as i64;
        if over > 0 {
            finished_removed += sqlx::query(
                "DELETE FROM cw_jobs WHERE rowid IN (SELECT rowid FROM cw_jobs WHERE queue = ?1 \
                 AND status IN ('completed', 'cancelled') ORDER BY finished_ms LIMIT ?2)",
            )
            .bind(&self.name)
            .bind(over)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let dead: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cw_jobs WHERE queue = ?1 AND status = 'failed'",
        )
        .bind(&self.name)
        .fetch_one(&mut *tx)
        .await?;
        let over = (dead as i128 - max_dead as i128).clamp(0, limit as i128) as i64;
        let mut dead_removed = 0;
        if over > 0 {
            dead_removed = sqlx::query(
                "DELETE FROM cw_jobs WHERE rowid IN (SELECT rowid FROM cw_jobs WHERE queue = ?1 \
                 AND status = 'failed' ORDER BY finished_ms LIMIT ?2)",
            )
            .bind(&self.name)
            .bind(over)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query("DELETE FROM cw_workers WHERE queue = ?1 AND alive_until_ms < ?2")
            .bind(&self.name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM cw_idempotency WHERE rowid IN (SELECT rowid FROM cw_idempotency \
             WHERE queue = ?1 AND expires_ms <= ?2 LIMIT ?3)",
        )
        .bind(&self.name)
        .bind(at)
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TrimReport {
            finished_removed,
            dead_removed,
        })
    }

    /// One consistency pass over every row of this queue, [`SWEEP_STEP`] rows per transaction:
    /// a running job without a lease gets one of `lease` (a live holder's heartbeat keeps it, a
    /// dead holder's runs out and the rescuer hands the job back); an ended job without an end
    /// time gets one (so retention finds it); a waiting job whose payload does not decode as an
    /// envelope is dead-lettered with the reason. Nothing is ever set aside on SQLite.
    pub async fn sweep(&self, lease: Duration) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let mut after = String::new();
        loop {
            let at = now();
            let mut tx = self.write().await?;
            let rows = sqlx::query(
                "SELECT id, status, lease_until_ms, finished_ms, fence, \
                 CAST(payload AS BLOB) AS payload FROM cw_jobs \
                 WHERE queue = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .bind(&self.name)
            .bind(&after)
            .bind(SWEEP_STEP)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            for r in &rows {
                report.checked += 1;
                let id: String = r.try_get("id")?;
                let status: String = r.try_get("status")?;
                let leased: Option<i64> = r.try_get("lease_until_ms")?;
                let ended: Option<i64> = r.try_get("finished_ms")?;
                let waiting = matches!(status.as_str(), "pending" | "scheduled" | "retrying");
                if waiting {
                    let payload: Vec<u8> = r
                        .try_get::<Option<Vec<u8>>, _>("payload")?
                        .unwrap_or_default();
                    if let Err(e) = Job::decode(&payload) {
                        let fence: i64 = r.try_get("fence")?;
                        // The fence moves past any value handed out, like `cw_bury`.
                        let fence = if fence >= at { fence + 1 } else { at };
                        sqlx::query(
                            "UPDATE cw_jobs SET status = 'failed', finished_ms = ?3, fence = ?4, \
                             lease_until_ms = NULL, error = ?5 WHERE queue = ?1 AND id = ?2",
                        )
                        .bind(&self.name)
                        .bind(&id)
                        .bind(at)
                        .bind(fence)
                        .bind(format!("malformed job record: cannot decode payload: {e}"))
                        .execute(&mut *tx)
                        .await?;
                        report.dead_lettered += 1;
                    }
                } else if status == "running" && leased.is_none() {
                    sqlx::query(
                        "UPDATE cw_jobs SET lease_until_ms = ?3 WHERE queue = ?1 AND id = ?2",
                    )
                    .bind(&self.name)
                    .bind(&id)
                    .bind(at.saturating_add(super::ms(lease)))
                    .execute(&mut *tx)
                    .await?;
                    report.repaired += 1;
                } else if status != "running" && ended.is_none() {
                    sqlx::query("UPDATE cw_jobs SET finished_ms = ?3 WHERE queue = ?1 AND id = ?2")
                        .bind(&self.name)
                        .bind(&id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    report.repaired += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(report)
    }

    /// Depth per state, live workers, the oldest ready job's age: one read transaction.
    pub async fn stats(&self) -> Result<QueueStats> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let mut s = QueueStats {
            queue: self.name.clone(),
            ..QueueStats::default()
        };
        let rows = sqlx::query(
            "SELECT status, priority, count(*) AS n FROM cw_jobs WHERE queue = ?1 \
             GROUP BY status, priority",
        )
        .bind(&self.name)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let status: String = r.try_get("status")?;
            let p: i64 = r.try_get("priority")?;
            let n = r.try_get::<i64, _>("n")?.max(0) as u64;
            match status.as_str() {
                "pending" => {
                    if let Some(slot) = usize::try_from(p)
                        .ok()
                        .and_then(|i| s.ready_by_priority.get_mut(i))
                    {
                        *slot += n;
                    }
                }
                "scheduled" => s.scheduled += n,
                "retrying" => s.retrying += n,
                "running" => s.running += n,
                "failed" => s.dead += n,
                "completed" | "cancelled" => s.finished += n,
                _ => {}
            }
        }
        s.ready = s.ready_by_priority.iter().sum();
        let mut oldest: Option<i64> = None;
        for p in 0..4i64 {
            let due: Option<i64> = sqlx::query_scalar(
                "SELECT max(enqueued_ms, run_at_ms) FROM cw_jobs WHERE queue = ?1 \
                 AND status = 'pending' AND priority = ?2 ORDER BY seq LIMIT 1",
            )
            .bind(&self.name)
            .bind(p)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(d) = due.filter(|d| *d > 0) {
                oldest = Some(oldest.map_or(d, |o| o.min(d)));
            }
        }
        s.oldest_ready_age_ms = oldest.map_or(0, |o| at.saturating_sub(o).max(0) as u64);
        let paused: Option<Option<i64>> =
            sqlx::query_scalar("SELECT paused_ms FROM cw_queues WHERE name = ?1")
                .bind(&self.name)
                .fetch_optional(&mut *tx)
                .await?;
        s.paused = paused.flatten().is_some();
        let workers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cw_workers WHERE queue = ?1 AND alive_until_ms >= ?2",
        )
        .bind(&self.name)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        s.workers = workers.max(0) as u64;
        tx.commit().await?;
        Ok(s)
    }
}
