//! The embedded event log (SSE replay, see `crate::events`): table `cw_events`, one row per
//! event under a Redis-style id `<ms>-<seq>`.
//!
//! Ids are handed out inside the append's `BEGIN IMMEDIATE` transaction from `cw_event_last`
//! (ms = max(now, last ms); seq = last seq + 1 within the same ms, else 0), so they increase
//! strictly across every process on the file, even after the log was trimmed empty. Each entry
//! also gets the next gapless number `n`; the cap deletes `n <= newest - maxlen` (exact, where
//! Redis trims about `maxlen`). `read_after` polls the table, woken at once by appends of this
//! process (a `Notify` per file) and every [`POLL`] for other processes'.
use super::gates::now_ms;
use crate::backend::{EventLog, Result};
use crate::events::{Event, Logged, StreamId};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a blocked read looks for other processes' appends.
pub const POLL: Duration = Duration::from_millis(50);

/// This process's append wake-ups, by file.
static APPENDED: LazyLock<Mutex<HashMap<PathBuf, Arc<Notify>>>> = LazyLock::new(Default::default);

fn appended(pool: &SqlitePool) -> Arc<Notify> {
    let options = pool.connect_options();
    let file = options.get_filename();
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    APPENDED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(file)
        .or_default()
        .clone()
}

#[derive(Clone, Debug)]
pub struct SqliteEventLog {
    pool: SqlitePool,
    appended: Arc<Notify>,
}

impl SqliteEventLog {
    pub fn new(pool: SqlitePool) -> Self {
        let appended = appended(&pool);
        Self { pool, appended }
    }
}

/// An id read back as stored (SQLite integers are i64; ids are never negative).
fn id_of(ms: i64, seq: i64) -> StreamId {
    StreamId(ms.max(0) as u64, seq.max(0) as u64)
}

/// The bound of an id in SQL (ids past i64 cannot be stored, so they compare as the largest).
fn sql_id(id: StreamId) -> (i64, i64) {
    (
        i64::try_from(id.0).unwrap_or(i64::MAX),
        i64::try_from(id.1).unwrap_or(i64::MAX),
    )
}

/// One row back into an event; a damaged row is reported and skipped (it cannot be replayed).
fn parse(row: &SqliteRow) -> Option<Logged> {
    let read = || -> std::result::Result<Logged, sqlx::Error> {
        let id = id_of(row.try_get("id_ms")?, row.try_get("id_seq")?);
        let kind: String = row.try_get("kind")?;
        let owner: Option<String> = row.try_get("owner")?;
        let data: String = row.try_get("data")?;
        let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
        Ok(Logged {
            id,
            event: Event {
                kind,
                owner: owner.filter(|o| !o.is_empty()),
                data,
            },
        })
    };
    match read() {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "skipping an unreadable row of the SQLite event log (cw_events)");
            None
        }
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append(&self, maxlen: u64, events: &[Event]) -> Result<()> {
        if events.is_empty() || maxlen == 0 {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last = sqlx::query(
            "SELECT CAST(id_ms AS INTEGER) AS ms, CAST(id_seq AS INTEGER) AS seq, \
             CAST(n AS INTEGER) AS n FROM cw_event_last WHERE only = 0",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (mut ms, mut seq, mut n) = match last {
            Some(r) => (r.try_get("ms")?, r.try_get("seq")?, r.try_get("n")?),
            // Nothing handed out yet: before every id (`0-0` is never handed out).
            None => (0i64, 0i64, 0i64),
        };
        for e in events {
            if now > ms {
                (ms, seq) = (now, 0);
            } else {
                seq += 1;
            }
            n += 1;
            sqlx::query(
                "INSERT INTO cw_events (n, id_ms, id_seq, kind, owner, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(n)
            .bind(ms)
            .bind(seq)
            .bind(&e.kind)
            .bind(e.owner.as_deref())
            .bind(e.data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO cw_event_last (only, id_ms, id_seq, n) VALUES (0, ?1, ?2, ?3) \
             ON CONFLICT (only) DO UPDATE SET id_ms = excluded.id_ms, id_seq = excluded.id_seq, \
             n = excluded.n",
        )
        .bind(ms)
        .bind(seq)
        .bind(n)
        .execute(&mut *tx)
        .await?;
        let keep = i64::try_from(maxlen).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM cw_events WHERE n <= ?1")
            .bind(n.saturating_sub(keep))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.appended.notify_waiters();
        Ok(())
    }

    async fn range_after(&self, after: StreamId, count: usize) -> Result<Vec<Logged>> {
        let (ms, seq) = sql_id(after);
        let rows = sqlx::query(
            "SELECT id_ms, id_seq, kind, owner, CAST(data AS TEXT) AS data FROM cw_events \
             WHERE (id_ms, id_seq) > (?1, ?2) ORDER BY id_ms, id_seq LIMIT ?3",
        )
        .bind(ms)
        .bind(seq)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().filter_map(parse).collect())
    }

    async fn trimmed_after(&self, id: StreamId) -> Result<bool> {
        // As Redis: the oldest entry kept is newer than `id` (conservative: says so when the
        // trim stopped exactly at the entry after `id`); an empty log has lost nothing.
        let first =
            sqlx::query("SELECT id_ms, id_seq FROM cw_events ORDER BY id_ms, id_seq LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(match first {
            Some(r) => id_of(r.try_get("id_ms")?, r.try_get("id_seq")?) > id,
            None => false,
        })
    }

    async fn last_id(&self) -> Result<StreamId> {
        // The newest entry kept (as XREVRANGE; `0-0` when the log is empty).
        let last = sqlx::query(
            "SELECT id_ms, id_seq FROM cw_events ORDER BY id_ms DESC, id_seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match last {
            Some(r) => id_of(r.try_get("id_ms")?, r.try_get("id_seq")?),
            None => StreamId::default(),
        })
    }

    async fn read_after(
        &self,
        after: StreamId,
        block_ms: u64,
        count: usize,
    ) -> Result<Vec<Logged>> {
        // `block_ms = 0` looks once (Redis would block for good; no caller wants that).
        let deadline = Instant::now() + Duration::from_millis(block_ms);
        loop {
            // Registered before the look, so an append between the look and the wait wakes it.
            let woken = self.appended.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let got = self.range_after(after, count).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(left.min(POLL)) => {}
            }
        }
    }
}
