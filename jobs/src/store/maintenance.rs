//! The maintenance role: the housekeeping writes of Chatter's seeded maintenance schedules
//! (retention deletes, archiving, vacuuming, vector index rebuilds), each safe to run twice.
//!
//! The policy (how many days) is the caller's (`crate::maintenance`); a backend only applies it.
use super::Result;

/// What a conversation cleanup changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationCleanup {
    pub archived: u64,
    pub deleted: u64,
}

/// One rebuilt vector index and its size after the rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRebuilt {
    pub index: String,
    pub table: String,
    pub bytes: i64,
}

/// The writes of the maintenance jobs.
#[async_trait::async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Delete the audit log entries older than `days`; returns how many went.
    async fn purge_audit_logs(&self, days: i32) -> Result<u64>;

    /// Reclaim dead rows' space and refresh the planner's statistics, database-wide.
    async fn vacuum_analyze(&self) -> Result<()>;

    /// Processed documents unchanged for `idle_days`, or created more than `age_days` ago,
    /// become `archived`; returns how many did.
    async fn archive_documents(&self, idle_days: i32, age_days: i32) -> Result<u64>;

    /// As one change: conversations archived (and untouched) for more than `delete_days` are
    /// deleted with their messages, then active ones idle for `idle_days` become archived.
    async fn clean_conversations(
        &self,
        idle_days: i32,
        delete_days: i32,
    ) -> Result<ConversationCleanup>;

    /// Rebuild every vector index of the store, without blocking searches, and refresh its
    /// table's statistics; returns each index with its size.
    async fn rebuild_vector_indexes(&self) -> Result<Vec<IndexRebuilt>>;
}
