//! The embedded store: every role of `crate::store` on one SQLite file (WAL), the file the
//! embedded queue (`chatter_worker::sqlite`) also lives in. Vectors are BLOBs of little-endian
//! f32 searched exactly (cosine, in Rust): no extension to load, the same answers as pgvector's
//! exact scan.
//!
//! One module per role, like `store::pg`: `documents`, `vectors` (with `cosine`, the exact
//! search's arithmetic), `workflows`, `maintenance`. The schema is `migrations/sqlite/0003_store.sql`:
//! PostgreSQL's tables with TEXT ids and JSON, INTEGER millisecond times, BLOB vectors. Every
//! write transaction starts with `BEGIN IMMEDIATE` ([`SqliteStore::write`]): it takes the file's
//! write lock up front, so concurrent writers (other connections, other processes) wait on the
//! busy timeout instead of failing, and a read inside it is as good as PostgreSQL's row lock.
mod cosine;
mod documents;
mod maintenance;
mod vectors;
mod workflows;

use super::{Result, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

/// The embedded schema: queue, backend and store tables (`migrations/sqlite`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a connection waits for another writer (any process) before an error.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Open (creating it when missing) the SQLite file at `path` with the settings every embedded
/// connection uses (WAL, `synchronous = NORMAL`, a busy timeout, foreign keys), migrated.
pub async fn open(path: &Path) -> Result<SqlitePool> {
    let pool = open_unmigrated(path, 8).await?;
    // Processes starting together on a fresh file race to create the tables: the loser's
    // migration fails (the table exists) and, tried again, finds them applied.
    let mut tries = 0;
    loop {
        match MIGRATOR.run(&pool).await {
            Ok(()) => return Ok(pool),
            Err(e) if tries < 10 => {
                tries += 1;
                tracing::debug!(error = %e, "migrating the SQLite file again");
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// [`open`] without migrating (a second pool on a file already opened), `max` connections.
pub async fn open_unmigrated(path: &Path, max: u32) -> Result<SqlitePool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Url {
            url: path.display().to_string(),
            message: format!("cannot create its folder: {e}"),
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .connect_with(options)
        .await?)
}

/// The embedded store: documents, chunks, vectors, workflows and memory in the SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// The store on a pool from [`open`].
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// A write transaction holding the file's write lock from its first statement.
    pub(super) async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// The current time in the stored unit (milliseconds since the Unix epoch), as SQL.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}
pub(crate) use now_ms;

/// A list bound as one JSON array parameter, read in SQL as `(SELECT value FROM json_each(?))`.
pub(super) fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    serde_json::Value::Array(
        items
            .iter()
            .map(|s| serde_json::Value::String(s.as_ref().to_string()))
            .collect(),
    )
    .to_string()
}

/// A quoted SQL identifier (space table names).
pub(super) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[async_trait::async_trait]
impl super::StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
