//! The rescuer: finds claims whose lease expired (a killed or hung worker) and hands them back,
//! or dead-letters them when their attempts are spent.
//!
//! Every process runs it; each expired lease is taken in one atomic script, so running it
//! everywhere at once is harmless (a lease is rescued once). Counts feed `chatter_jobs_rescued_total`.
use crate::backend::{Queue, RescueReport, Result};
use crate::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct RescuerConfig {
    /// How often expired leases are looked for. A dead worker's jobs come back within
    /// lease + interval.
    pub interval: Duration,
    /// Most leases handled per queue per script call (the pass repeats while calls come back full).
    pub batch: usize,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 1000,
        }
    }
}

pub struct Rescuer {
    pub config: RescuerConfig,
    pub queues: Vec<Arc<dyn Queue>>,
}

impl Rescuer {
    pub async fn run_once(&self) -> Result<RescueReport> {
        let mut total = RescueReport::default();
        for q in &self.queues {
            loop {
                let r = q.rescue(self.config.batch).await?;
                if r.total() > 0 {
                    metrics::record_rescued(q.name(), r.total());
                    tracing::warn!(
                        queue = q.name(),
                        requeued = r.requeued,
                        dead = r.dead,
                        cancelled = r.cancelled,
                        "rescued expired leases"
                    );
                }
                total.requeued += r.requeued;
                total.dead += r.dead;
                total.cancelled += r.cancelled;
                if (r.total() as usize) < self.config.batch {
                    break;
                }
            }
        }
        Ok(total)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "rescuer pass failed; next pass retries");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
