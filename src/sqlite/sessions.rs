//! The embedded dashboard sessions: table `cw_sessions`, the session as JSON under the caller's
//! digest key until `expires_ms` (this machine's clock: every process on the file shares it).
//! An expired session reads as gone and is deleted when read; `create` also clears every
//! expired one, so logins that are never read again do not pile up.
use super::gates::now_ms;
use crate::backend::{QueueError, Result, Session, Sessions};
use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SqliteSessions {
    pool: SqlitePool,
}

impl SqliteSessions {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Sessions for SqliteSessions {
    async fn create(&self, key: &str, session: &Session, ttl: Duration) -> Result<()> {
        let body = serde_json::to_string(session).map_err(|e| QueueError::Backend {
            backend: "sqlite",
            source: format!(
                "the session of {:?} cannot be written as JSON: {e}",
                session.user
            )
            .into(),
        })?;
        let now = now_ms();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM cw_sessions WHERE expires_ms <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO cw_sessions (key, body, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET body = excluded.body, expires_ms = excluded.expires_ms",
        )
        .bind(key)
        .bind(body)
        .bind(now.saturating_add(ttl))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Session>> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT CAST(body AS TEXT) AS body, \
             CASE WHEN typeof(expires_ms) = 'integer' THEN expires_ms END AS expires_ms \
             FROM cw_sessions WHERE key = ?1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires: Option<i64> = row.try_get("expires_ms").ok().flatten();
        if expires.is_none_or(|t| t <= now) {
            // Expired (or with no readable expiry): gone, and deleted unless renewed meanwhile.
            sqlx::query(
                "DELETE FROM cw_sessions WHERE key = ?1 \
                 AND NOT (typeof(expires_ms) = 'integer' AND expires_ms > ?2)",
            )
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await?;
            return Ok(None);
        }
        let body: Option<String> = row.try_get("body").ok().flatten();
        Ok(body.and_then(|b| match serde_json::from_str(&b) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "a dashboard session in the SQLite file is unreadable; treated as logged out");
                None
            }
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM cw_sessions WHERE key = ?1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
