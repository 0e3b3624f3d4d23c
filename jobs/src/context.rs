//! What a handler runs with: its job's identity, a cancellation token and a progress reporter.
//!
//! The runtime builds one [`JobContext`] per claimed job. Cancellation (a user's cancel, a lost
//! lease, a shutdown past its deadline) trips the token; a handler stops at its next await.
//! Progress goes through a channel that the runtime drains into Redis, so handlers never touch Redis.
use crate::outcome::JobError;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// One progress report: 0–100 and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    pub job_id: String,
    pub fence: u64,
    pub progress: u8,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct JobContext {
    pub job_id: String,
    /// 1 on the first run, counting retries and rescues.
    pub attempt: u32,
    /// The claim number that fences this run's writes.
    pub fence: u64,
    pub cancel: CancellationToken,
    /// Tripped (before `cancel`) when a user cancelled the job, as opposed to a shutdown or a
    /// lost claim handing it to another worker: only then may a handler record it as cancelled.
    pub user_cancel: CancellationToken,
    progress: Option<UnboundedSender<ProgressUpdate>>,
}

impl JobContext {
    pub fn new(
        job_id: String,
        attempt: u32,
        fence: u64,
        cancel: CancellationToken,
        progress: Option<UnboundedSender<ProgressUpdate>>,
    ) -> Self {
        Self {
            job_id,
            attempt,
            fence,
            cancel,
            user_cancel: CancellationToken::new(),
            progress,
        }
    }

    /// With the token a user's cancel trips.
    pub fn with_user_cancel(mut self, token: CancellationToken) -> Self {
        self.user_cancel = token;
        self
    }

    /// True when the job stops because a user cancelled it.
    pub fn cancelled_by_user(&self) -> bool {
        self.user_cancel.is_cancelled()
    }

    /// Report progress (clamped to 100). Best effort: a report is dropped if the runtime is gone.
    pub fn progress(&self, progress: u8, message: impl Into<String>) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(ProgressUpdate {
                job_id: self.job_id.clone(),
                fence: self.fence,
                progress: progress.min(100),
                message: message.into(),
            });
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Run CPU-heavy work on the blocking pool so heartbeats and other jobs keep their reactor.
    pub async fn blocking<F, R>(&self, f: F) -> Result<R, JobError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| JobError::Retry(format!("blocking task failed: {e}")))
    }
}
