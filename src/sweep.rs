//! The consistency sweep: every so often, every job record of every queue is checked against the
//! structure its status says it is in. A job left in none (by a hand edit, a restore, a script of
//! an older version that failed halfway) is put back; a malformed record is dead-lettered with its
//! reason; a key of the wrong type is set aside. Safe in every process at once (atomic steps).
//! It reads every job key, so it runs rarely (default every 5 minutes).
use crate::metrics;
use crate::queue::{RedisQueue, Result, SweepReport};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Time between passes; the first pass runs one interval after start (a restart loop must
    /// not scan the keyspace each time).
    pub interval: Duration,
}

/// Five minutes: a stranded job is found within that, and the key scan stays a small load.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
        }
    }
}

pub struct Sweep {
    pub config: SweepConfig,
    pub queues: Vec<RedisQueue>,
}

impl Sweep {
    pub async fn run_once(&self) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        for q in &self.queues {
            let r = q.sweep().await?;
            if r.repaired + r.dead_lettered > 0 || r.set_aside > 0 {
                tracing::warn!(
                    queue = q.name(),
                    checked = r.checked,
                    repaired = r.repaired,
                    dead_lettered = r.dead_lettered,
                    set_aside = r.set_aside,
                    "consistency sweep repaired the queue"
                );
            }
            if r.dead_lettered > 0 {
                metrics::record_undecodable(q.name(), r.dead_lettered);
            }
            total.checked += r.checked;
            total.repaired += r.repaired;
            total.dead_lettered += r.dead_lettered;
            total.set_aside += r.set_aside;
            total.ready_check_skipped |= r.ready_check_skipped;
        }
        Ok(total)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "consistency sweep failed; the next pass retries");
            }
        }
    }
}
