//! Retention: drops finished and dead records past their time or count, in bounded steps, so
//! Redis memory stays flat after a burst. Safe in every process at once (atomic trims).
use crate::backend::{Queue, Result, TrimReport};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How often each queue is trimmed.
    pub interval: Duration,
    /// Most records deleted per set per script call (the pass repeats while calls come back full).
    pub batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            batch: 1000,
        }
    }
}

pub struct Retention {
    pub config: RetentionConfig,
    pub queues: Vec<Arc<dyn Queue>>,
}

impl Retention {
    pub async fn run_once(&self) -> Result<TrimReport> {
        let mut total = TrimReport::default();
        for q in &self.queues {
            loop {
                let r = q.trim(self.config.batch).await?;
                total.finished_removed += r.finished_removed;
                total.dead_removed += r.dead_removed;
                if (r.finished_removed as usize) < self.config.batch
                    && (r.dead_removed as usize) < self.config.batch
                {
                    break;
                }
            }
        }
        Ok(total)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "retention pass failed; next pass retries");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
