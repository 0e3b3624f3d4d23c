//! The embedded dashboard sessions.
use crate::backend::{Result, Session, Sessions};
use async_trait::async_trait;
use sqlx::SqlitePool;
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
    async fn create(&self, _key: &str, _session: &Session, _ttl: Duration) -> Result<()> {
        let _ = &self.pool;
        todo!()
    }
    async fn get(&self, _key: &str) -> Result<Option<Session>> {
        todo!()
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        todo!()
    }
}
