//! A provider account's rate limit (requests and tokens per window), shared by every process.
//! The trait keeps Redis out of this crate: the runtime implements it (`src/ratelimit.rs`).
use crate::JobError;
use futures::future::BoxFuture;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    /// The limiter cannot be asked now (Redis is down): the job retries later.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
    /// One request costs more than the whole window allows: it can never be granted.
    #[error("{0}")]
    TooLarge(String),
}

pub trait RateLimiter: Send + Sync {
    /// Take one request of `tokens` tokens from `key`'s budget now: `None` when granted, else
    /// how long to wait before asking again.
    fn try_take<'a>(
        &'a self,
        key: &'a str,
        tokens: u64,
    ) -> BoxFuture<'a, Result<Option<Duration>, LimitError>>;
}

/// No limit (a local model, or a provider without configured limits).
pub struct Unlimited;

impl RateLimiter for Unlimited {
    fn try_take<'a>(
        &'a self,
        _key: &'a str,
        _tokens: u64,
    ) -> BoxFuture<'a, Result<Option<Duration>, LimitError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Wait until the limiter grants a request, counting the waits
/// (`chatter_rate_limit_waits_total`, `chatter_rate_limit_wait_seconds`).
pub async fn take(
    limiter: &dyn RateLimiter,
    key: &str,
    provider: &str,
    tokens: u64,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    loop {
        let wait = limiter.try_take(key, tokens).await.map_err(|e| match e {
            LimitError::Unavailable(_) => JobError::Retry(e.to_string()),
            LimitError::TooLarge(_) => JobError::Fatal(e.to_string()),
        })?;
        let Some(wait) = wait else {
            return Ok(());
        };
        let wait = wait.max(Duration::from_millis(5));
        metrics::counter!("chatter_rate_limit_waits_total", "provider" => provider.to_string())
            .increment(1);
        metrics::histogram!("chatter_rate_limit_wait_seconds", "provider" => provider.to_string())
            .record(wait.as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return Err(JobError::Cancelled),
        }
    }
}
