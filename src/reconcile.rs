//! Workflow executions whose job ended without its handler: cancelled while queued, snoozed
//! for a long delay or waiting for a retry; dead-lettered by the rescuer; deleted. The handler
//! never runs again for them, so their `workflow_executions` row would stay `running`; this
//! pass ends it from the job's state in Redis. Safe in every process at once (each row is
//! closed by a conditional update).
use crate::backend::Queue;
use chatter_jobs::store::WorkflowStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Reconciler {
    pub store: Arc<dyn WorkflowStore>,
    /// The `workflows` queue.
    pub queue: Arc<dyn Queue>,
    pub interval: Duration,
    /// Rows written more recently than this are left alone (their job may be running a node).
    pub idle: Duration,
}

impl Reconciler {
    /// One pass; returns how many executions it closed.
    pub async fn run_once(&self) -> Result<usize, String> {
        let rows = self
            .store
            .idle_executions(self.idle.as_secs_f64(), 500)
            .await
            .map_err(|e| e.to_string())?;
        let mut closed = 0;
        for (id, job) in rows {
            let status = self
                .queue
                .field(&job, "status")
                .await
                .map_err(|e| e.to_string())?;
            let (to, why) = match status.as_deref() {
                Some("cancelled") => ("cancelled", "cancelled".to_string()),
                Some("failed") => {
                    let error = self.queue.field(&job, "error").await.ok().flatten();
                    (
                        "failed",
                        error.unwrap_or_else(|| format!("job {job} failed")),
                    )
                }
                None => ("failed", format!("its job {job} is gone")),
                // Pending, scheduled, retrying, running: the handler will end it.
                Some(_) => continue,
            };
            if self
                .store
                .close_execution(&id, &job, to, &why)
                .await
                .map_err(|e| e.to_string())?
            {
                tracing::info!(execution = %id, %job, status = to, "closed a workflow execution its job left open");
                closed += 1;
            }
        }
        Ok(closed)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "workflow reconcile pass failed; next pass retries");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
