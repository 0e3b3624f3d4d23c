//! The embedded event log (SSE replay): see `crate::events`.
use crate::backend::{EventLog, Result};
use crate::events::{Event, Logged, StreamId};
use async_trait::async_trait;
use sqlx::SqlitePool;

#[derive(Clone, Debug)]
pub struct SqliteEventLog {
    pool: SqlitePool,
}

impl SqliteEventLog {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append(&self, _maxlen: u64, _events: &[Event]) -> Result<()> {
        let _ = &self.pool;
        todo!()
    }
    async fn range_after(&self, _after: StreamId, _count: usize) -> Result<Vec<Logged>> {
        todo!()
    }
    async fn trimmed_after(&self, _id: StreamId) -> Result<bool> {
        todo!()
    }
    async fn last_id(&self) -> Result<StreamId> {
        todo!()
    }
    async fn read_after(
        &self,
        _after: StreamId,
        _block_ms: u64,
        _count: usize,
    ) -> Result<Vec<Logged>> {
        todo!()
    }
}
