//! The gates and the cron scheduler's state in Redis. A gate is a string key set with
//! `SET NX PX` (the value names its holder; it expires on its own), given back by
//! `gate_release.lua` only by its holder. A schedule's last fire is a string of tick ms moved on
//! by `cron_advance.lua`; a tick marked done holds `done`. The clock is Redis's `TIME`.
use super::{ConnectionManager, Keys, Result, scripts};
use crate::backend::{CronGate, Gate, Gates};
use async_trait::async_trait;
use std::time::{Duration, SystemTime};

/// What a tick's gate holds once its job is enqueued.
const DONE: &str = "done";

/// [`Gates`] and [`CronGate`] over one prefix's keys.
#[derive(Clone)]
pub struct RedisGates {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisGates {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, gate: Gate<'_>) -> String {
        match gate {
            Gate::CronTick { schedule, tick_ms } => {
                Keys::cron_tick(&self.prefix, schedule, tick_ms)
            }
            Gate::Sweep { queue } => Keys::new(&self.prefix, queue).sweep_gate(),
        }
    }
}

#[async_trait]
impl Gates for RedisGates {
    async fn try_claim(&self, gate: Gate<'_>, holder: &str, ttl: Duration) -> Result<bool> {
        let won: Option<String> = redis::cmd("SET")
            .arg(self.key(gate))
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg((ttl.as_millis() as u64).max(1))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(won.is_some())
    }

    async fn release(&self, gate: Gate<'_>, holder: &str) -> Result<()> {
        let _: i64 = scripts::GATE_RELEASE
            .key(self.key(gate))
            .arg(holder)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl CronGate for RedisGates {
    async fn now(&self) -> Result<SystemTime> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
    }

    async fn last_fire(&self, schedule: &str) -> Result<Option<i64>> {
        // A key of another type or not a number reads as never fired (`cron_advance` replaces
        // it), so a damaged key costs at most one catch-up instead of stopping the schedule.
        let v: redis::Value = redis::cmd("GET")
            .arg(Keys::cron_last(&self.prefix, schedule))
            .query_async(&mut self.conn.clone())
            .await
            .or_else(|e| match e.code() {
                Some("WRONGTYPE") => Ok(redis::Value::Nil),
                _ => Err(e),
            })?;
        Ok(match v {
            redis::Value::BulkString(b) => {
                std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok())
            }
            _ => None,
        })
    }

    async fn advance_last_fire(&self, schedule: &str, tick_ms: i64) -> Result<()> {
        let _: i64 = scripts::CRON_ADVANCE
            .key(Keys::cron_last(&self.prefix, schedule))
            .arg(tick_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn mark_done(&self, schedule: &str, tick_ms: i64, keep: Duration) -> Result<()> {
        let _: () = redis::cmd("SET")
            .arg(Keys::cron_tick(&self.prefix, schedule, tick_ms))
            .arg(DONE)
            .arg("EX")
            .arg(keep.as_secs().max(1))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn is_done(&self, schedule: &str, tick_ms: i64) -> Result<bool> {
        let state: Option<String> = redis::cmd("GET")
            .arg(Keys::cron_tick(&self.prefix, schedule, tick_ms))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(state.as_deref() == Some(DONE))
    }
}
