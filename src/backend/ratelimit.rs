//! A provider account's shared rate-limit log: every process on the backend takes from the
//! same sliding window, on the backend's clock (process clocks do not matter). The log only
//! answers grant or wait; `crate::ratelimit` turns that into the handlers' `RateLimiter`.
use super::Result;
use async_trait::async_trait;
use std::time::Duration;

/// What one window may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub window: Duration,
    /// Requests per window (None: no request limit).
    pub requests: Option<u64>,
    /// Tokens per window (None: no token limit).
    pub tokens: Option<u64>,
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Granted and recorded in the window.
    Granted,
    /// Not recorded: enough of the window's oldest grants leave it after this long.
    Wait(Duration),
    /// Not recorded: one request of this many tokens is over the token limit by itself.
    TooLarge,
}

#[async_trait]
pub trait RateLog: Send + Sync {
    /// Take a request of `tokens` from `account`'s log: granted only when the requests and
    /// tokens granted in the last `limits.window`, plus it, fit the limits. Atomic, so no window
    /// of that length ever holds more than the limits whatever the number of processes.
    async fn take(&self, account: &str, limits: &Limits, tokens: u64) -> Result<Take>;
}
