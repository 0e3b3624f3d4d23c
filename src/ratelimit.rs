//! The shared [`RateLimiter`]: a sliding-window log per provider account, shared by every process
//! on the backend ([`RateLog`]). A request is granted only when the requests and the tokens
//! granted in the last window, plus it, fit the limits; otherwise the answer is how long until
//! enough of the window's oldest grants leave it. The window is on the backend's clock, so
//! process clocks do not matter, and no window of that length ever holds more than the limits
//! (a fixed-window counter would allow twice the limit across a boundary).
pub use crate::backend::ratelimit::Limits;
use crate::backend::ratelimit::{RateLog, Take};
use chatter_jobs::embed::limiter::{LimitError, RateLimiter};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct SharedLimiter {
    log: Arc<dyn RateLog>,
    limits: Limits,
}

impl SharedLimiter {
    pub fn new(log: Arc<dyn RateLog>, limits: Limits) -> Self {
        Self { log, limits }
    }
}

impl RateLimiter for SharedLimiter {
    fn try_take<'a>(
        &'a self,
        key: &'a str,
        tokens: u64,
    ) -> BoxFuture<'a, Result<Option<Duration>, LimitError>> {
        Box::pin(async move {
            let l = self.limits;
            if l.requests.is_none() && l.tokens.is_none() {
                return Ok(None);
            }
            let take = self
                .log
                .take(key, &l, tokens)
                .await
                .map_err(|e| LimitError::Unavailable(e.to_string()))?;
            match take {
                Take::Granted => Ok(None),
                Take::TooLarge => Err(LimitError::TooLarge(format!(
                    "one request of {tokens} tokens is over the limit of {} tokens per {:?}",
                    l.tokens.unwrap_or(0),
                    l.window
                ))),
                Take::Wait(w) => Ok(Some(w)),
            }
        })
    }
}
