//! Set-up and tear-down around a PostgreSQL store, for the benchmarks: a schema of a run's own
//! (created, then dropped with everything in it), a database beside this one, a readiness probe
//! for another process's migrations, a row count, and closing the pool.
//!
//! Inherent and PostgreSQL-only: only the benchmarks need them, and an embedded SQLite file has
//! no schemas or sibling databases (its set-up is a fresh file), so no role trait.
use super::Store;
use super::maintenance::ident;
use crate::store::Result;

impl Store {
    /// Create schema `name` when absent.
    pub async fn create_schema(&self, name: &str) -> Result<()> {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", ident(name));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drop schema `name` and everything in it.
    pub async fn drop_schema(&self, name: &str) -> Result<()> {
        let sql = format!("DROP SCHEMA {} CASCADE", ident(name));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Create database `name` on this server when absent; true when it was created.
    pub async fn create_database(&self, name: &str) -> Result<bool> {
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        if exists.is_some() {
            return Ok(false);
        }
        let sql = format!("CREATE DATABASE {}", ident(name));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Whether table `name` (schema-qualified or on the search path) exists.
    pub async fn has_table(&self, name: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    /// All chunks of all documents.
    pub async fn count_chunks(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM document_chunks")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Close the pool: wait for its connections to be returned, then end them.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
