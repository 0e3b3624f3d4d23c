//! The embedded store: every role of `crate::store` on one SQLite file (WAL), the file the
//! embedded queue (`chatter_worker::sqlite`) also lives in. Vectors are BLOBs of little-endian
//! f32 searched exactly (cosine, in Rust): no extension to load, the same answers as pgvector's
//! exact scan.
mod stubs;

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
    MIGRATOR.run(&pool).await?;
    Ok(pool)
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
}
