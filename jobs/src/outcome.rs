//! The closed set of ways a job can end, and how handlers classify their errors.
//!
//! Handlers return `Result<Value, JobError>`; `?` with [`ErrorExt::retryable`] or
//! [`ErrorExt::fatal`] classifies an error where it happens. The runtime turns the result into an
//! [`Outcome`] in exactly one place (the queue backend's layer) and never downcasts.
use serde_json::Value;
use std::fmt::Display;
use std::time::Duration;

/// Why a handler did not complete.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network, provider 5xx, timeouts): retried per the retry policy.
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (bad input, 4xx): dead-lettered at once.
    #[error("{0}")]
    Fatal(String),
    /// Not an error: run again after this long without counting an attempt.
    #[error("snoozed for {0:?}")]
    Snooze(Duration),
    /// The job saw its cancellation token and stopped.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    /// Why the job ends here for good, when it does: a fatal error, or a retryable one on its
    /// last attempt. None when another run follows (retry, snooze) or it was cancelled.
    pub fn final_reason(&self, last_attempt: bool) -> Option<String> {
        match self {
            Self::Fatal(m) => Some(m.clone()),
            Self::Retry(m) if last_attempt => Some(format!("{m} (attempts spent)")),
            _ => None,
        }
    }
}

/// How a job run ended, as the queue records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed(Value),
    Retry(String),
    Fail(String),
    Snooze(Duration),
    Cancelled,
}

impl Outcome {
    /// The metric label of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Completed(_) => "completed",
            Self::Retry(_) => "retried",
            Self::Fail(_) => "failed",
            Self::Snooze(_) => "snoozed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl From<Result<Value, JobError>> for Outcome {
    fn from(r: Result<Value, JobError>) -> Self {
        match r {
            Ok(v) => Self::Completed(v),
            Err(JobError::Retry(m)) => Self::Retry(m),
            Err(JobError::Fatal(m)) => Self::Fail(m),
            Err(JobError::Snooze(d)) => Self::Snooze(d),
            Err(JobError::Cancelled) => Self::Cancelled,
        }
    }
}

/// Classify any displayable error where it happens: `fetch().await.retryable()?`.
pub trait ErrorExt<T> {
    fn retryable(self) -> Result<T, JobError>;
    fn fatal(self) -> Result<T, JobError>;
}

impl<T, E: Display> ErrorExt<T> for Result<T, E> {
    fn retryable(self) -> Result<T, JobError> {
        self.map_err(|e| JobError::Retry(e.to_string()))
    }
    fn fatal(self) -> Result<T, JobError> {
        self.map_err(|e| JobError::Fatal(e.to_string()))
    }
}
