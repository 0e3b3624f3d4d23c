//! Producers' side of the embedded queue: enqueue batches (cut into bounded transactions) and
//! all-or-nothing batches across queues (one transaction). Idempotent like `enqueue.lua`: a live
//! idempotency key, or an id the queue already holds, returns that job (`created = false`).
use super::{CHUNK, SqliteQueue, now, prio_num, reserve_back, wake, write};
use crate::backend::checks::check;
use crate::backend::{Enqueued, QueueError, QueueOptions, Result};
use chatter_jobs::Job;
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::path::Path;

impl SqliteQueue {
    /// Enqueue many jobs of this queue, [`CHUNK`] per transaction; each job is checked first
    /// (a bad job refuses the whole batch before anything is written).
    pub async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<Enqueued>> {
        check(jobs, &self.options.limits)?;
        for job in jobs {
            if job.queue != self.name {
                return Err(QueueError::WrongQueue {
                    id: job.id.clone(),
                    job_queue: job.queue.clone(),
                    queue: self.name.clone(),
                });
            }
        }
        let ttl = super::ms(self.options.idempotency_ttl);
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(CHUNK) {
            let mut tx = self.write().await?;
            let found = insert(&mut tx, &self.name, chunk, now(), ttl).await?;
            tx.commit().await?;
            if found.iter().any(|e| e.created) {
                self.wake();
            }
            out.extend(found);
        }
        crate::backend::checks::record_created(jobs, &out);
        Ok(out)
    }
}

/// Enqueue jobs bound for any queues in one transaction: all of them or none. One result per
/// job, in order.
pub async fn enqueue_atomic(
    pool: &SqlitePool,
    path: &Path,
    options: &QueueOptions,
    jobs: &[Job],
) -> Result<Vec<Enqueued>> {
    check(jobs, &options.limits)?;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut names: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let ttl = super::ms(options.idempotency_ttl);
    let at = now();
    let mut out = vec![
        Enqueued {
            id: String::new(),
            created: false,
        };
        jobs.len()
    ];
    let mut tx = write(pool).await?;
    let mut woken = Vec::new();
    for name in &names {
        let (place, batch): (Vec<usize>, Vec<Job>) = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.queue == *name)
            .map(|(i, j)| (i, j.clone()))
            .unzip();
        let found = insert(&mut tx, name, &batch, at, ttl).await?;
        if found.iter().any(|e| e.created) {
            woken.push(*name);
        }
        for (i, e) in place.into_iter().zip(found) {
            out[i] = e;
        }
    }
    tx.commit().await?;
    for name in woken {
        wake(path, name);
    }
    crate::backend::checks::record_created(jobs, &out);
    Ok(out)
}

/// Insert `jobs` (all of queue `queue`) in the open transaction; one result per job.
async fn insert(
    tx: &mut Transaction<'static, Sqlite>,
    queue: &str,
    jobs: &[Job],
    now: i64,
    ttl: i64,
) -> Result<Vec<Enqueued>> {
    let mut next = reserve_back(tx, queue, jobs.len()).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let key = job.idempotency_key.as_deref().filter(|k| !k.is_empty());
        let mut existing: Option<String> = None;
        if let Some(key) = key {
            existing = sqlx::query_scalar(
                "SELECT id FROM cw_idempotency WHERE queue = ?1 AND key = ?2 AND expires_ms > ?3",
            )
            .bind(queue)
            .bind(key)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
        }
        // Re-sending the same id (a producer retrying after a lost reply) never enqueues twice.
        if existing.is_none() {
            existing = sqlx::query_scalar("SELECT id FROM cw_jobs WHERE queue = ?1 AND id = ?2")
                .bind(queue)
                .bind(&job.id)
                .fetch_optional(&mut **tx)
                .await?;
        }
        if let Some(id) = existing {
            out.push(Enqueued { id, created: false });
            continue;
        }
        if let Some(key) = key.filter(|_| ttl > 0) {
            sqlx::query(
                "INSERT INTO cw_idempotency (queue, key, id, expires_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (queue, key) DO UPDATE SET id = excluded.id, \
                 expires_ms = excluded.expires_ms",
            )
            .bind(queue)
            .bind(key)
            .bind(&job.id)
            .bind(now.saturating_add(ttl))
            .execute(&mut **tx)
            .await?;
        }
        let run_at = job
            .scheduled_at
            .map(|t| t.millis() as i64)
            .filter(|t| *t > now)
            .unwrap_or(0);
        let status = if run_at > now { "scheduled" } else { "pending" };
        sqlx::query(
            "INSERT INTO cw_jobs (queue, id, status, priority, seq, run_at_ms, enqueued_ms, \
             created_ms, payload, max_attempts, owner, idempotency_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(queue)
        .bind(&job.id)
        .bind(status)
        .bind(prio_num(job.priority))
        .bind(next)
        .bind(run_at)
        .bind(now)
        .bind(job.created_at.millis() as i64)
        .bind(job.encode())
        .bind(i64::from(job.max_attempts()))
        .bind(job.created_by_user_id.as_deref())
        .bind(key)
        .execute(&mut **tx)
        .await?;
        next += 1;
        out.push(Enqueued {
            id: job.id.clone(),
            created: true,
        });
    }
    Ok(out)
}
