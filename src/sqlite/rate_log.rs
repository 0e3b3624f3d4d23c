//! The embedded rate-limit logs of the providers' accounts.
use crate::backend::ratelimit::{Limits, Take};
use crate::backend::{RateLog, Result};
use async_trait::async_trait;
use sqlx::SqlitePool;

#[derive(Clone, Debug)]
pub struct SqliteRateLog {
    pool: SqlitePool,
}

impl SqliteRateLog {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl RateLog for SqliteRateLog {
    async fn take(&self, _account: &str, _limits: &Limits, _tokens: u64) -> Result<Take> {
        let _ = &self.pool;
        todo!()
    }
}
