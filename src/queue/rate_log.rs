//! The providers' shared rate-limit logs in Redis: one sorted set per account
//! (`Keys::rate_log`), taken from atomically by `rate_take.lua` on Redis's clock, so every
//! process on the Redis shares one sliding window.
use super::{ConnectionManager, Keys, Result, scripts};
use crate::backend::ratelimit::{Limits, RateLog, Take};
use async_trait::async_trait;
use std::time::Duration;

#[derive(Clone)]
pub struct RedisRateLog {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisRateLog {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
        }
    }
}

#[async_trait]
impl RateLog for RedisRateLog {
    async fn take(&self, account: &str, limits: &Limits, tokens: u64) -> Result<Take> {
        let wait: i64 = scripts::RATE_TAKE
            .key(Keys::rate_log(&self.prefix, account))
            .arg(limits.window.as_millis().max(1) as u64)
            .arg(limits.requests.unwrap_or(0))
            .arg(limits.tokens.unwrap_or(0))
            .arg(tokens)
            .arg(ulid::Ulid::new().to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match wait {
            0 => Take::Granted,
            w if w < 0 => Take::TooLarge,
            w => Take::Wait(Duration::from_millis(w as u64)),
        })
    }
}
