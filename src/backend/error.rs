//! What every backend's operations can fail with, backend-neutral: the backend itself
//! (unreachable, timed out: retry later), a job that fails its checks, or a reply the backend
//! should never give. Backends convert their client's error into [`QueueError::Backend`].
use chatter_jobs::envelope::InvalidJob;
use chatter_jobs::registry::UnknownKind;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend failed (unreachable, timed out, refused): retry later. `backend` names it.
    #[error("{backend}: {source}")]
    Backend {
        backend: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    #[error("job {id} names queue {job_queue:?} but was enqueued on {queue:?}")]
    WrongQueue {
        id: String,
        job_queue: String,
        queue: String,
    },
    /// A job over a size limit or scheduled beyond the horizon (`chatter_jobs::limits`);
    /// `index` is its place in the batch.
    #[error("job {index} ({id}): {error}")]
    Limit {
        index: usize,
        id: String,
        error: chatter_jobs::LimitError,
    },
    #[error("unexpected reply from script {script}: {detail}")]
    Reply {
        script: &'static str,
        detail: String,
    },
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;
