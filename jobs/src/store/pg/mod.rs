//! The PostgreSQL/pgvector backend: the connection pool, the embedded migrations, and one module
//! per role implementing its trait over Chatter's tables (`documents`, `vectors`, `workflows`,
//! `maintenance`), plus `admin`: schema and database set-up for the benchmarks.
//!
//! The pool stays inside this module: callers go through the roles (tests that inspect the
//! database for their assertions open a pool of their own).
mod admin;
mod documents;
mod maintenance;
mod vectors;
mod workflows;

pub use vectors::search_sql;

use super::{Result, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The migrations of `migrations/postgres`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The PostgreSQL store: every role over one pool (cheap to clone: clones share the pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
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

#[async_trait::async_trait]
impl super::StoreHealth for Store {
    async fn ping(&self) -> Result<()> {
        Store::ping(self).await
    }
}
