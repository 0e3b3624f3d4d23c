//! Queue upkeep that is safe to run in every process at once: each step is one atomic script over
//! a bounded number of entries. Used by the rescuer and retention loops and the metrics collector.
use super::{RedisQueue, Result, array, int, now_ms, scripts};
use crate::backend::model::*;

impl RedisQueue {
    /// Hand back up to `limit` jobs whose lease expired before now.
    pub async fn rescue(&self, limit: usize) -> Result<RescueReport> {
        let k = &self.keys;
        let (requeued, dead, cancelled): (u64, u64, u64) = scripts::RESCUE
            .key(k.leases())
            .key(k.job_prefix())
            .key(k.ready_prefix())
            .key(k.dead())
            .key(k.done())
            .key(k.notify())
            .key(k.owner_index_prefix())
            .arg(limit)
            .arg(self.options.finished_retention.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(RescueReport {
            requeued,
            dead,
            cancelled,
        })
    }

    /// Enforce retention on finished and dead jobs, at most `limit` deletions per set.
    pub async fn trim(&self, limit: usize) -> Result<TrimReport> {
        let o = &self.options;
        let retention = o.finished_retention.as_millis() as u64;
        self.trim_with(retention, o.max_finished, o.max_dead, limit)
            .await
    }

    /// Remove every finished (completed, cancelled) record now, and with `dead` every dead
    /// letter too, in bounded calls (the API's cleanup). Returns how many of each went.
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
        retention_ms: u64,
        max_finished: u64,
        max_dead: u64,
        limit: usize,
    ) -> Result<TrimReport> {
        let k = &self.keys;
        let (finished_removed, dead_removed): (u64, u64) = scripts::TRIM
            .key(k.done())
            .key(k.dead())
            .key(k.job_prefix())
            .key(k.workers())
            .key(k.owner_index_prefix())
            .arg(now_ms())
            .arg(retention_ms)
            .arg(max_finished)
            .arg(max_dead)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(TrimReport {
            finished_removed,
            dead_removed,
        })
    }

    pub async fn stats(&self) -> Result<QueueStats> {
        let k = &self.keys;
        let now = now_ms();
        let reply = scripts::STATS
            .key(k.ready_prefix())
            .key(k.scheduled())
            .key(k.retry())
            .key(k.leases())
            .key(k.dead())
            .key(k.done())
            .key(k.paused())
            .key(k.workers())
            .key(k.job_prefix())
            .arg(now)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let v: Vec<i64> = array(reply, "stats")?.iter().map(int).collect();
        if v.len() < 12 {
            return Err(super::QueueError::Reply {
                script: "stats",
                detail: format!("{v:?}"),
            });
        }
        let by = [v[0] as u64, v[1] as u64, v[2] as u64, v[3] as u64];
        Ok(QueueStats {
            queue: self.name().to_string(),
            ready_by_priority: by,
            ready: by.iter().sum(),
            scheduled: v[4] as u64,
            retrying: v[5] as u64,
            running: v[6] as u64,
            dead: v[7] as u64,
            finished: v[8] as u64,
            paused: v[9] == 1,
            workers: v[10] as u64,
            oldest_ready_age_ms: if v[11] < 0 {
                0
            } else {
                now.saturating_sub(v[11] as u64)
            },
        })
    }
}
