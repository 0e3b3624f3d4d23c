//! Operators' and producers' view of the embedded queue (`crate::queue::admin`, `cancel.lua`,
//! `replay.lua`, `purge.lua`): show, the owner index, scans, cancel, replay and purge of dead
//! letters, pause and resume.
use super::record::{COLUMNS, shown_status};
use super::{SqliteQueue, cancel_signal, now, reserve_back};
use crate::backend::{CancelResult, JobRecord, Result};
use std::collections::{HashMap, HashSet};

impl SqliteQueue {
    /// Records in the order of `ids` (`None` where there is none).
    pub async fn show_many(&self, ids: &[String]) -> Result<Vec<Option<JobRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let sql = format!(
            "SELECT {COLUMNS} FROM cw_jobs WHERE queue = ?1 \
             AND id IN (SELECT value FROM json_each(?2))"
        );
        // COLUMNS is a constant: no caller text in the statement.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.name)
            .bind(list)
            .fetch_all(&self.pool)
            .await?;
        let found: HashMap<String, JobRecord> = rows
            .iter()
            .map(|r| self.record(r))
            .map(|rec| (rec.id.clone(), rec))
            .collect();
        // An id asked for twice gets its record twice.
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    /// A page of an owner's (id, creation ms) created within `min..=max`.
    pub async fn index_page(
        &self,
        owner: &str,
        (min, max): (u64, u64),
        offset: usize,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, u64)>> {
        let sql = if newest_first {
            "SELECT id, created_ms FROM cw_jobs WHERE queue = ?1 AND owner = ?2 \
             AND created_ms BETWEEN ?3 AND ?4 ORDER BY created_ms DESC, id DESC LIMIT ?5 OFFSET ?6"
        } else {
            "SELECT id, created_ms FROM cw_jobs WHERE queue = ?1 AND owner = ?2 \
             AND created_ms BETWEEN ?3 AND ?4 ORDER BY created_ms, id LIMIT ?5 OFFSET ?6"
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(sql)
            .bind(&self.name)
            .bind(owner)
            .bind(clamp(min))
            .bind(clamp(max))
            .bind(count as i64)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, c)| (id, c.max(0) as u64))
            .collect())
    }

    /// How many of an owner's jobs were created within `min..=max`.
    pub async fn index_count(&self, owner: &str, (min, max): (u64, u64)) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cw_jobs WHERE queue = ?1 AND owner = ?2 \
             AND created_ms BETWEEN ?3 AND ?4",
        )
        .bind(&self.name)
        .bind(owner)
        .bind(clamp(min))
        .bind(clamp(max))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    /// Up to `max` ids: running (by lease), ready (claim order), scheduled, retrying (by
    /// run-at), then the newest dead and finished.
    pub async fn scan_ids(&self, max: usize) -> Result<Vec<String>> {
        const STEPS: [&str; 6] = [
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'running' \
             ORDER BY lease_until_ms LIMIT ?2",
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'pending' \
             ORDER BY priority, seq LIMIT ?2",
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'scheduled' \
             ORDER BY run_at_ms LIMIT ?2",
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'retrying' \
             ORDER BY run_at_ms LIMIT ?2",
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'failed' \
             ORDER BY finished_ms DESC LIMIT ?2",
            "SELECT id FROM cw_jobs WHERE queue = ?1 AND status IN ('completed', 'cancelled') \
             ORDER BY finished_ms DESC LIMIT ?2",
        ];
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for sql in STEPS {
            if out.len() >= max {
                break;
            }
            let ids: Vec<String> = sqlx::query_scalar(sql)
                .bind(&self.name)
                .bind(max as i64)
                .fetch_all(&self.pool)
                .await?;
            for id in ids {
                if out.len() < max && seen.insert(id.clone()) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Cancel a waiting job at once; flag a running one (its heartbeat and the cancel stream
    /// tell its worker, and it ends `cancelled` when the worker finishes it).
    pub async fn cancel(&self, id: &str) -> Result<CancelResult> {
        let at = now();
        let mut tx = self.write().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM cw_jobs WHERE queue = ?1 AND id = ?2")
                .bind(&self.name)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let result = match status.as_deref() {
            None => CancelResult::NotFound,
            Some("pending" | "scheduled" | "retrying") => {
                sqlx::query(
                    "UPDATE cw_jobs SET status = 'cancelled', finished_ms = ?3, \
                     error = 'cancelled' WHERE queue = ?1 AND id = ?2",
                )
                .bind(&self.name)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                self.drop_finished(&mut tx, id, self.retention_ms()).await?;
                CancelResult::Cancelled
            }
            Some("running") => {
                sqlx::query("UPDATE cw_jobs SET cancel_requested = 1 WHERE queue = ?1 AND id = ?2")
                    .bind(&self.name)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                CancelResult::Cancelling
            }
            Some(other) => CancelResult::AlreadyFinished(shown_status(other).to_string()),
        };
        tx.commit().await?;
        if result == CancelResult::Cancelling {
            let n = cancel_signal(&self.path, &self.name);
            n.notify_waiters();
            n.notify_one();
        }
        Ok(result)
    }

    /// Put dead letters (`id`, or the oldest `limit`) back at the end of the ready line with a
    /// fresh attempt count (the fence only moves forward); returns how many.
    pub async fn replay(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        let mut tx = self.write().await?;
        let ids = self.dead_ids(&mut tx, id, limit).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut seq = reserve_back(&mut tx, &self.name, ids.len()).await?;
        let mut n = 0;
        for id in &ids {
            n += sqlx::query(
                "UPDATE cw_jobs SET status = 'pending', attempt = 0, error = '', seq = ?3, \
                 cancel_requested = 0, finished_ms = NULL, lease_until_ms = NULL, run_at_ms = 0 \
                 WHERE queue = ?1 AND id = ?2 AND status = 'failed'",
            )
            .bind(&self.name)
            .bind(id)
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            seq += 1;
        }
        tx.commit().await?;
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    /// Delete dead letters (`id`, or the oldest `limit`) for good; returns how many.
    pub async fn purge_dead(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        let mut tx = self.write().await?;
        let ids = self.dead_ids(&mut tx, id, limit).await?;
        let mut n = 0;
        for id in &ids {
            n += sqlx::query(
                "DELETE FROM cw_jobs WHERE queue = ?1 AND id = ?2 AND status = 'failed'",
            )
            .bind(&self.name)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// `id` if it is a dead letter of this queue, or the ids of the oldest `limit`.
    async fn dead_ids(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        Ok(match id {
            Some(id) => {
                sqlx::query_scalar(
                    "SELECT id FROM cw_jobs WHERE queue = ?1 AND id = ?2 AND status = 'failed'",
                )
                .bind(&self.name)
                .bind(id)
                .fetch_all(&mut **tx)
                .await?
            }
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM cw_jobs WHERE queue = ?1 AND status = 'failed' \
                     ORDER BY finished_ms, id LIMIT ?2",
                )
                .bind(&self.name)
                .bind(limit.max(1) as i64)
                .fetch_all(&mut **tx)
                .await?
            }
        })
    }

    /// Dead letters, oldest first.
    pub async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM cw_jobs WHERE queue = ?1 AND status = 'failed' \
             ORDER BY finished_ms, id LIMIT ?2 OFFSET ?3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.name)
            .bind(limit.max(1) as i64)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| self.record(r)).collect())
    }

    /// Jobs that completed or were cancelled at a time (ms) within `min..=max`.
    pub async fn finished_count(&self, (min, max): (u64, u64)) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cw_jobs WHERE queue = ?1 \
             AND status IN ('completed', 'cancelled') AND finished_ms BETWEEN ?2 AND ?3",
        )
        .bind(&self.name)
        .bind(clamp(min))
        .bind(clamp(max))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    pub async fn pause(&self) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO cw_queues (name, paused_ms) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET paused_ms = excluded.paused_ms",
        )
        .bind(&self.name)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Resume and wake this process's idle fetchers at once.
    pub async fn resume(&self) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE cw_queues SET paused_ms = NULL WHERE name = ?1")
            .bind(&self.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    pub async fn is_paused(&self) -> Result<bool> {
        let paused: Option<Option<i64>> =
            sqlx::query_scalar("SELECT paused_ms FROM cw_queues WHERE name = ?1")
                .bind(&self.name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(paused.flatten().is_some())
    }

    pub async fn exists(&self, id: &str) -> Result<bool> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM cw_jobs WHERE queue = ?1 AND id = ?2")
                .bind(&self.name)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.is_some())
    }

    /// This queue's registered workers and until when (ms) each counts as alive.
    pub async fn workers(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT worker, alive_until_ms FROM cw_workers WHERE queue = ?1 \
             ORDER BY alive_until_ms, worker",
        )
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(w, t)| (w, t.max(0) as u64))
            .collect())
    }
}

/// A bound in ms as SQLite's integer (`u64::MAX` means no upper bound).
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
