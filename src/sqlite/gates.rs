//! The embedded gates (the sweep's and the cron ticks' once-per-interval claims), cron marks and
//! clock.
use crate::backend::{CronGate, Gate, Gates, Result};
use async_trait::async_trait;
use sqlx::SqlitePool;
use std::time::{Duration, SystemTime};

#[derive(Clone, Debug)]
pub struct SqliteGates {
    pool: SqlitePool,
}

impl SqliteGates {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Gates for SqliteGates {
    async fn try_claim(&self, _gate: Gate<'_>, _holder: &str, _ttl: Duration) -> Result<bool> {
        let _ = &self.pool;
        todo!()
    }
    async fn release(&self, _gate: Gate<'_>, _holder: &str) -> Result<()> {
        todo!()
    }
}

#[async_trait]
impl CronGate for SqliteGates {
    async fn now(&self) -> Result<SystemTime> {
        todo!()
    }
    async fn last_fire(&self, _schedule: &str) -> Result<Option<i64>> {
        todo!()
    }
    async fn advance_last_fire(&self, _schedule: &str, _tick_ms: i64) -> Result<()> {
        todo!()
    }
    async fn mark_done(&self, _schedule: &str, _tick_ms: i64, _keep: Duration) -> Result<()> {
        todo!()
    }
    async fn is_done(&self, _schedule: &str, _tick_ms: i64) -> Result<bool> {
        todo!()
    }
}
