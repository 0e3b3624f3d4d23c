//! PostgreSQL's maintenance role: the maintenance jobs' SQL against Chatter's tables
//! (`audit_logs`, `documents`, `conversations`, `messages`) and every valid HNSW index in the
//! schemas of the search path.
//!
//! VACUUM and REINDEX CONCURRENTLY refuse to run inside a transaction: they go through the
//! simple protocol (`raw_sql`) on a pooled connection, outside any.
use super::Store;
use crate::store::Result;
use crate::store::maintenance::{ConversationCleanup, IndexRebuilt, MaintenanceStore};
use sqlx::Row;

#[async_trait::async_trait]
impl MaintenanceStore for Store {
    async fn purge_audit_logs(&self, days: i32) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM audit_logs WHERE created_at < now() - make_interval(days => $1)",
        )
        .bind(days)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn vacuum_analyze(&self) -> Result<()> {
        sqlx::raw_sql("VACUUM ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    async fn archive_documents(&self, idle_days: i32, age_days: i32) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE documents SET status = 'archived', updated_at = now()
              WHERE status = 'processed'
                AND (updated_at < now() - make_interval(days => $1)
                     OR created_at < now() - make_interval(days => $2))",
        )
        .bind(idle_days)
        .bind(age_days)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn clean_conversations(
        &self,
        idle_days: i32,
        delete_days: i32,
    ) -> Result<ConversationCleanup> {
        let mut tx = self.pool.begin().await?;
        // Messages first: a database Chatter created may not cascade.
        sqlx::query(
            "DELETE FROM messages WHERE conversation_id IN (
                SELECT id FROM conversations
                 WHERE status = 'archived' AND updated_at < now() - make_interval(days => $1))",
        )
        .bind(delete_days)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(
            "DELETE FROM conversations
              WHERE status = 'archived' AND updated_at < now() - make_interval(days => $1)",
        )
        .bind(delete_days)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let archived = sqlx::query(
            "UPDATE conversations SET status = 'archived', updated_at = now()
              WHERE status = 'active'
                AND COALESCE(last_message_at, updated_at) < now() - make_interval(days => $1)",
        )
        .bind(idle_days)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ConversationCleanup { archived, deleted })
    }

    async fn rebuild_vector_indexes(&self) -> Result<Vec<IndexRebuilt>> {
        let pool = &self.pool;
        let rows = sqlx::query(
            "SELECT i.schemaname, i.indexname, i.tablename
               FROM pg_indexes i
               JOIN pg_class c ON c.relname = i.indexname
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
               JOIN pg_index x ON x.indexrelid = c.oid
              WHERE i.indexdef ILIKE '%USING hnsw%'
                AND x.indisvalid
                AND i.schemaname = ANY (current_schemas(false))
              ORDER BY i.indexname",
        )
        .fetch_all(pool)
        .await?;
        let mut report = Vec::new();
        for r in rows {
            let schema: String = r.try_get("schemaname")?;
            let index: String = r.try_get("indexname")?;
            let table: String = r.try_get("tablename")?;
            let qi = format!("{}.{}", ident(&schema), ident(&index));
            let qt = format!("{}.{}", ident(&schema), ident(&table));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "REINDEX INDEX CONCURRENTLY {qi}"
            )))
            .execute(pool)
            .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {qt}")))
                .execute(pool)
                .await?;
            let bytes: i64 = sqlx::query_scalar("SELECT pg_relation_size($1::regclass)")
                .bind(&qi)
                .fetch_one(pool)
                .await?;
            report.push(IndexRebuilt {
                index,
                table,
                bytes,
            });
        }
        Ok(report)
    }
}

/// A quoted SQL identifier.
pub(super) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
