//! SQLite's maintenance role: the maintenance jobs' SQL of `store::pg::maintenance` against
//! the same tables (`audit_logs`, `documents`, `conversations`, `messages`), times in
//! milliseconds; `VACUUM` plus `PRAGMA optimize` for PostgreSQL's `VACUUM ANALYZE`; and no vector
//! index to rebuild (search is exact).
use super::{SqliteStore, now_ms};
use crate::store::Result;
use crate::store::maintenance::{ConversationCleanup, IndexRebuilt, MaintenanceStore};

/// Milliseconds in a day, for `days` parameters.
const DAY_MS: i64 = 86_400_000;

#[async_trait::async_trait]
impl MaintenanceStore for SqliteStore {
    async fn purge_audit_logs(&self, days: i32) -> Result<u64> {
        Ok(sqlx::query(concat!(
            "DELETE FROM audit_logs WHERE created_at < ",
            now_ms!(),
            " - ?1"
        ))
        .bind(i64::from(days) * DAY_MS)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    // VACUUM rewrites the file (through the WAL; it waits for the write lock like any writer)
    // and cannot run inside a transaction; `PRAGMA optimize` refreshes the planner's
    // statistics where they are stale (0x10002: every table, with a bounded analysis).
    async fn vacuum_analyze(&self) -> Result<()> {
        sqlx::raw_sql("VACUUM").execute(&self.pool).await?;
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn archive_documents(&self, idle_days: i32, age_days: i32) -> Result<u64> {
        Ok(sqlx::query(concat!(
            "UPDATE documents SET status = 'archived', updated_at = ",
            now_ms!(),
            " WHERE status = 'processed'
                AND (updated_at < ",
            now_ms!(),
            " - ?1 OR created_at < ",
            now_ms!(),
            " - ?2)"
        ))
        .bind(i64::from(idle_days) * DAY_MS)
        .bind(i64::from(age_days) * DAY_MS)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn clean_conversations(
        &self,
        idle_days: i32,
        delete_days: i32,
    ) -> Result<ConversationCleanup> {
        let mut tx = self.write().await?;
        // Messages first, as the PostgreSQL store does (foreign keys may be off on a
        // connection that is not ours).
        sqlx::query(concat!(
            "DELETE FROM messages WHERE conversation_id IN (
                SELECT id FROM conversations
                 WHERE status = 'archived' AND updated_at < ",
            now_ms!(),
            " - ?1)"
        ))
        .bind(i64::from(delete_days) * DAY_MS)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(concat!(
            "DELETE FROM conversations WHERE status = 'archived' AND updated_at < ",
            now_ms!(),
            " - ?1"
        ))
        .bind(i64::from(delete_days) * DAY_MS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let archived = sqlx::query(concat!(
            "UPDATE conversations SET status = 'archived', updated_at = ",
            now_ms!(),
            " WHERE status = 'active'
                AND COALESCE(last_message_at, updated_at) < ",
            now_ms!(),
            " - ?1"
        ))
        .bind(i64::from(idle_days) * DAY_MS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ConversationCleanup { archived, deleted })
    }

    /// Nothing to rebuild: the embedded search is exact (every vector of a space is compared),
    /// so there is no vector index. Always an empty list.
    async fn rebuild_vector_indexes(&self) -> Result<Vec<IndexRebuilt>> {
        Ok(Vec::new())
    }
}
