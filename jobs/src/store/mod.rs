//! PostgreSQL storage of the job handlers: the connection pool, the migrations, and one module
//! per table family (`documents`: documents and their chunks; `vectors`: embeddings;
//! `workflows`: workflow definitions, executions, checkpoints and memory).
//!
//! This is the narrow seam the embedded SQLite default will slot in behind: handlers call these
//! methods and never write SQL of their own.
pub mod documents;
pub mod vectors;
pub mod workflows;

/// The driver, for callers that run their own statements (benchmarks, tests).
pub use sqlx;

pub use documents::{Document, DocumentStatus, NewChunk, NewDocument, Run};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not marked as the source: its message is already in ours, once.
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("bad DATABASE_URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("no document {0}")]
    NoDocument(String),
    /// A vector space's tables exist for another model.
    #[error("vector space: {0}")]
    Space(String),
    /// A stored value that cannot be read back (or a value that cannot be stored).
    #[error("stored data: {0}")]
    Data(String),
    /// Another run took the document over (this one lost its lease, or a newer job started).
    #[error("document {document} is now processed by job {job_id} (claim {fence})")]
    Superseded {
        document: String,
        job_id: String,
        fence: i64,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// The migrations of `migrations/postgres`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl StoreError {
    /// The server could not be reached (down, refused, timed out), as opposed to refusing us.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        )
    }
}

/// The pool settings both ways of connecting share, and the parsed URL (its error redacted).
fn pool_options(url: &str, max_connections: u32) -> Result<(PgPoolOptions, PgConnectOptions)> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Url {
        url: redact(url),
        message: e.to_string(),
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10));
    Ok((pool, options))
}

impl Store {
    /// Connect, opening the first connection now so a wrong URL fails at start. A URL parameter
    /// `options=-csearch_path%3DNAME` selects a schema (tests use one per test).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let (pool, options) = pool_options(url, max_connections)?;
        Ok(Self {
            pool: pool.connect_with(options).await?,
        })
    }

    /// A pool that connects on first use: the process starts while PostgreSQL is down (its
    /// readiness says so, jobs needing it retry).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self> {
        let (pool, options) = pool_options(url, max_connections)?;
        Ok(Self {
            pool: pool.connect_lazy_with(options),
        })
    }

    /// One round trip (readiness checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Create what is absent (`chatter-worker migrate`, `run --migrate`).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
