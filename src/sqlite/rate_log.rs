//! The embedded rate-limit logs of the providers' accounts: table `cw_rate_log`, one row per
//! grant (`at_ms`, `tokens`), taken from in one `BEGIN IMMEDIATE` transaction, so every process
//! on the file shares one sliding window (`rate_take.lua`'s rule, on this machine's clock): the
//! window is `(now - window, now]`; a request is granted when the window's requests and tokens
//! plus it fit, else it waits until enough of the oldest grants leave the window; one request
//! over the token limit by itself is `TooLarge`. Rows older than the window are pruned on every
//! take; rows of idle accounts go two windows after their grant (`until_ms`), as Redis's expiry.
use super::gates::now_ms;
use crate::backend::ratelimit::{Limits, Take};
use crate::backend::{RateLog, Result};
use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SqliteRateLog {
    pool: SqlitePool,
}

impl SqliteRateLog {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The wait, ms, before a request of `cost` fits the window holding `grants` (`(at_ms, tokens)`,
/// oldest first) at `now`; 0 when it fits now. `max_requests` and `max_tokens`: 0 = no limit.
pub fn wait_ms(
    grants: &[(i64, i64)],
    now: i64,
    window: i64,
    max_requests: i64,
    max_tokens: i64,
    cost: i64,
) -> i64 {
    let mut wait = 0i64;
    let count = grants.len() as i64;
    if max_requests > 0 && count + 1 > max_requests {
        // The (count + 1 - max)-th oldest grant must leave the window first.
        let at = grants[(count - max_requests) as usize].0;
        wait = wait.max(at + window - now + 1);
    }
    if max_tokens > 0 {
        let used: i64 = grants.iter().map(|g| g.1).fold(0, i64::saturating_add);
        if used.saturating_add(cost) > max_tokens {
            let need = used.saturating_add(cost) - max_tokens;
            let mut freed = 0i64;
            let leaves = grants.iter().find_map(|&(at, tokens)| {
                freed = freed.saturating_add(tokens);
                (freed >= need).then_some(at + window - now + 1)
            });
            wait = wait.max(leaves.unwrap_or(window));
        }
    }
    wait.max(0)
}

#[async_trait]
impl RateLog for SqliteRateLog {
    async fn take(&self, account: &str, limits: &Limits, tokens: u64) -> Result<Take> {
        let window = i64::try_from(limits.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let max_requests = to_i64(limits.requests.unwrap_or(0));
        let max_tokens = to_i64(limits.tokens.unwrap_or(0));
        let cost = to_i64(tokens);
        if max_tokens > 0 && cost > max_tokens {
            return Ok(Take::TooLarge);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The clock is read once the write lock is held, so grants are recorded in time order.
        let now = now_ms();
        sqlx::query("DELETE FROM cw_rate_log WHERE until_ms <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM cw_rate_log WHERE account = ?1 AND at_ms <= ?2")
            .bind(account)
            .bind(now.saturating_sub(window))
            .execute(&mut *tx)
            .await?;
        // A damaged row counts as a grant of no tokens at its time (or now): it only ever
        // makes the limit stricter, and it leaves with the window.
        let rows = sqlx::query(
            "SELECT CASE WHEN typeof(at_ms) = 'integer' THEN at_ms ELSE ?2 END AS at_ms, \
             CASE WHEN typeof(tokens) = 'integer' THEN max(tokens, 0) ELSE 0 END AS tokens \
             FROM cw_rate_log WHERE account = ?1 ORDER BY at_ms, rowid",
        )
        .bind(account)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut grants = Vec::with_capacity(rows.len());
        for r in &rows {
            grants.push((
                r.try_get::<i64, _>("at_ms")?,
                r.try_get::<i64, _>("tokens")?,
            ));
        }
        let wait = wait_ms(&grants, now, window, max_requests, max_tokens, cost);
        if wait == 0 {
            sqlx::query(
                "INSERT INTO cw_rate_log (account, at_ms, tokens, until_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(account)
            .bind(now)
            .bind(cost)
            .bind(now.saturating_add(window.saturating_mul(2)))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(match wait {
            0 => Take::Granted,
            w => Take::Wait(Duration::from_millis(w as u64)),
        })
    }
}
