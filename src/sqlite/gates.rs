//! The embedded gates (the sweep's and the cron ticks' once-per-interval claims), cron marks and
//! clock. A gate is a row of `cw_gates` (`sweep:<queue>`, `cron:<schedule>:<tick ms>`) naming its
//! holder until `expires_ms`; a claim wins only when no unexpired row is there (one upsert, so
//! exactly one of any number of processes wins), a release deletes only the holder's own row.
//! A tick marked done holds [`DONE`] for its keep. A schedule's last fire is `cw_cron_last`,
//! moved on only forward. The clock is this machine's: every process on the file shares it.
use crate::backend::{CronGate, Gate, Gates, Result};
use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use std::time::{Duration, SystemTime};

/// What a tick's gate holds once its job is enqueued.
pub const DONE: &str = "done";

/// Now, ms since the epoch (the embedded backend's clock).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The row name of a gate.
pub fn name(gate: Gate<'_>) -> String {
    match gate {
        Gate::CronTick { schedule, tick_ms } => tick_name(schedule, tick_ms),
        Gate::Sweep { queue } => format!("sweep:{queue}"),
    }
}

fn tick_name(schedule: &str, tick_ms: i64) -> String {
    format!("cron:{schedule}:{tick_ms}")
}

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
    async fn try_claim(&self, gate: Gate<'_>, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Expired claims and marks go first (indexed), so the table holds only live gates.
        sqlx::query("DELETE FROM cw_gates WHERE expires_ms <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Replaces a row only when it is expired or unreadable (a damaged expiry must not hold
        // the gate for good).
        let won = sqlx::query(
            "INSERT INTO cw_gates (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_ms = excluded.expires_ms \
             WHERE NOT (typeof(cw_gates.expires_ms) = 'integer' AND cw_gates.expires_ms > ?4) \
             RETURNING 1 AS won",
        )
        .bind(name(gate))
        .bind(holder)
        .bind(now.saturating_add(ms(ttl)))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        tx.commit().await?;
        Ok(won)
    }

    async fn release(&self, gate: Gate<'_>, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM cw_gates WHERE name = ?1 AND holder = ?2")
            .bind(name(gate))
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl CronGate for SqliteGates {
    async fn now(&self) -> Result<SystemTime> {
        Ok(SystemTime::now())
    }

    async fn last_fire(&self, schedule: &str) -> Result<Option<i64>> {
        // Anything but an integer reads as never fired (`advance_last_fire` replaces it).
        let row = sqlx::query(
            "SELECT CASE WHEN typeof(tick_ms) = 'integer' THEN tick_ms END AS tick_ms \
             FROM cw_cron_last WHERE schedule = ?1",
        )
        .bind(schedule)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| r.try_get::<Option<i64>, _>("tick_ms").ok().flatten()))
    }

    async fn advance_last_fire(&self, schedule: &str, tick_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO cw_cron_last (schedule, tick_ms) VALUES (?1, ?2) \
             ON CONFLICT (schedule) DO UPDATE SET tick_ms = excluded.tick_ms \
             WHERE typeof(cw_cron_last.tick_ms) <> 'integer' \
             OR cw_cron_last.tick_ms < excluded.tick_ms",
        )
        .bind(schedule)
        .bind(tick_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_done(&self, schedule: &str, tick_ms: i64, keep: Duration) -> Result<()> {
        // As Redis (`SET .. EX`): whole seconds, at least one.
        let keep = Duration::from_secs(keep.as_secs().max(1));
        sqlx::query(
            "INSERT INTO cw_gates (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_ms = excluded.expires_ms",
        )
        .bind(tick_name(schedule, tick_ms))
        .bind(DONE)
        .bind(now_ms().saturating_add(ms(keep)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn is_done(&self, schedule: &str, tick_ms: i64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM cw_gates WHERE name = ?1 AND holder = ?2 \
             AND typeof(expires_ms) = 'integer' AND expires_ms > ?3",
        )
        .bind(tick_name(schedule, tick_ms))
        .bind(DONE)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}
