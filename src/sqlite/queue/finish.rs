//! How claimed jobs ended (`finish.lua`): one transaction per [`CHUNK`] entries; an entry whose
//! fence moved on, or whose job is no longer running, changes nothing and is reported stale.
use super::{CHUNK, SqliteQueue, now, reserve_front};
use crate::backend::{Finish, FinishEntry, FinishReport, Result};
use sqlx::Row;

impl SqliteQueue {
    /// Record how claimed jobs ended, [`CHUNK`] entries per transaction; an entry whose fence
    /// moved on (or whose job is no longer running) changes nothing and is reported stale.
    pub async fn finish(&self, entries: &[FinishEntry]) -> Result<FinishReport> {
        let mut report = FinishReport::default();
        let retention = self.retention_ms();
        for chunk in entries.chunks(CHUNK) {
            let at = now();
            let mut pushed = false;
            let mut tx = self.write().await?;
            for e in chunk {
                let row = sqlx::query(
                    "SELECT status, fence, cancel_requested FROM cw_jobs \
                     WHERE queue = ?1 AND id = ?2",
                )
                .bind(&self.name)
                .bind(&e.id)
                .fetch_optional(&mut *tx)
                .await?;
                let current = match &row {
                    Some(r) => {
                        let status: String = r.try_get("status")?;
                        let fence: i64 = r.try_get("fence")?;
                        let cancel: i64 = r.try_get("cancel_requested")?;
                        (status == "running" && fence == e.fence as i64).then_some(cancel == 1)
                    }
                    None => None,
                };
                let Some(cancel) = current else {
                    report.stale += 1;
                    report.stale_ids.push(e.id.clone());
                    continue;
                };
                report.applied += 1;
                let mut finish = e.finish.clone();
                // A cancel requested while it ran wins over running it again.
                if cancel
                    && matches!(
                        finish,
                        Finish::Retry { .. } | Finish::Snooze { .. } | Finish::Requeue
                    )
                {
                    finish = Finish::Cancelled {
                        reason: "cancelled".into(),
                    };
                }
                let q = |sql| {
                    sqlx::query(sql)
                        .bind(self.name.clone())
                        .bind(e.id.clone())
                        .bind(at)
                };
                match finish {
                    Finish::Completed { result } => {
                        q(
                            "UPDATE cw_jobs SET status = 'completed', finished_ms = ?3, \
                           lease_until_ms = NULL, result = coalesce(?4, result) \
                           WHERE queue = ?1 AND id = ?2",
                        )
                        .bind(result.filter(|r| !r.is_empty()))
                        .execute(&mut *tx)
                        .await?;
                        self.drop_finished(&mut tx, &e.id, retention).await?;
                    }
                    Finish::Cancelled { reason } => {
                        q(
                            "UPDATE cw_jobs SET status = 'cancelled', finished_ms = ?3, \
                           lease_until_ms = NULL, error = ?4 WHERE queue = ?1 AND id = ?2",
                        )
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?;
                        self.drop_finished(&mut tx, &e.id, retention).await?;
                    }
                    Finish::Retry {
                        error,
                        history,
                        run_at_ms,
                    } => {
                        q(concat!(
                            "UPDATE cw_jobs SET status = 'retrying', lease_until_ms = NULL, ",
                            "error = ?4, run_at_ms = ?6, ",
                            history_append!("5"),
                            " WHERE queue = ?1 AND id = ?2"
                        ))
                        .bind(error)
                        .bind(history)
                        .bind(run_at_ms as i64)
                        .execute(&mut *tx)
                        .await?;
                        pushed = true;
                    }
                    Finish::Dead { error, history } => {
                        q(concat!(
                            "UPDATE cw_jobs SET status = 'failed', finished_ms = ?3, ",
                            "lease_until_ms = NULL, error = ?4, ",
                            history_append!("5"),
                            " WHERE queue = ?1 AND id = ?2"
                        ))
                        .bind(error)
                        .bind(history)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Finish::Snooze { run_at_ms } => {
                        q(
                            "UPDATE cw_jobs SET status = 'scheduled', lease_until_ms = NULL, \
                           attempt = max(attempt - 1, 0), run_at_ms = ?4 \
                           WHERE queue = ?1 AND id = ?2",
                        )
                        .bind(run_at_ms as i64)
                        .execute(&mut *tx)
                        .await?;
                        pushed = true;
                    }
                    Finish::Requeue => {
                        let seq = reserve_front(&mut tx, &self.name).await?;
                        q(
                            "UPDATE cw_jobs SET status = 'pending', lease_until_ms = NULL, \
                           attempt = max(attempt - 1, 0), seq = ?4 \
                           WHERE queue = ?1 AND id = ?2",
                        )
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                        pushed = true;
                    }
                }
            }
            tx.commit().await?;
            if pushed {
                self.wake();
            }
        }
        Ok(report)
    }

    /// With no retention a finished record goes at once (its owner index entry with it).
    pub(super) async fn drop_finished(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        id: &str,
        retention: i64,
    ) -> Result<()> {
        if retention == 0 {
            sqlx::query("DELETE FROM cw_jobs WHERE queue = ?1 AND id = ?2")
                .bind(&self.name)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}
