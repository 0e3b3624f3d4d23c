//! Chatter's maintenance jobs as real SQL against its tables (CHATTER_CONTRACTS.md, "Seeded
//! cron schedules"). Each is safe to run twice: a second run finds nothing left to change.
//! - `database_maintenance`: audit_logs older than 365 days deleted, then VACUUM ANALYZE.
//! - `document_archiving`: processed documents unchanged for 90 days, or older than 365 days,
//!   become `archived`.
//! - `conversation_cleanup`: conversations idle for 180 days become `archived`; those archived
//!   for more than 730 days are deleted with their messages.
//! - `vector_store_maintenance`: every HNSW index rebuilt (REINDEX CONCURRENTLY) and its table
//!   analysed, with each index's size reported.
use crate::kinds::maintenance::{
    CONVERSATION_CLEANUP, DATABASE_MAINTENANCE, DOCUMENT_ARCHIVING, VECTOR_STORE_MAINTENANCE,
    check_no_args,
};
use crate::registry::{Registry, queues};
use crate::store::Store;
use crate::{ErrorExt, JobError};
use serde_json::{Value, json};
use sqlx::Row;
use std::sync::Arc;

pub struct Maintenance {
    store: Store,
}

impl Maintenance {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn install(self: Arc<Self>, registry: &mut Registry) {
        for kind in [
            DATABASE_MAINTENANCE,
            DOCUMENT_ARCHIVING,
            CONVERSATION_CLEANUP,
            VECTOR_STORE_MAINTENANCE,
        ] {
            let me = self.clone();
            registry.register_checked(
                kind,
                queues::MAINTENANCE,
                move |_job, _ctx| {
                    let me = me.clone();
                    async move { me.run(kind).await }
                },
                check_no_args,
            );
        }
    }

    pub async fn run(&self, kind: &str) -> Result<Value, JobError> {
        match kind {
            DATABASE_MAINTENANCE => self.database().await,
            DOCUMENT_ARCHIVING => self.documents().await,
            CONVERSATION_CLEANUP => self.conversations().await,
            VECTOR_STORE_MAINTENANCE => self.vectors().await,
            other => Err(JobError::Fatal(format!("not a maintenance kind: {other}"))),
        }
    }

    async fn database(&self) -> Result<Value, JobError> {
        let pool = self.store.pool();
        let deleted =
            sqlx::query("DELETE FROM audit_logs WHERE created_at < now() - interval '365 days'")
                .execute(pool)
                .await
                .retryable()?
                .rows_affected();
        // Outside a transaction (the simple protocol): VACUUM refuses to run inside one.
        sqlx::raw_sql("VACUUM ANALYZE")
            .execute(pool)
            .await
            .retryable()?;
        Ok(json!({"audit_logs_deleted": deleted, "vacuum_analyze": true}))
    }

    async fn documents(&self) -> Result<Value, JobError> {
        let archived = sqlx::query(
            "UPDATE documents SET status = 'archived', updated_at = now()
              WHERE status = 'processed'
                AND (updated_at < now() - interval '90 days'
                     OR created_at < now() - interval '365 days')",
        )
        .execute(self.store.pool())
        .await
        .retryable()?
        .rows_affected();
        Ok(json!({"documents_archived": archived}))
    }

    async fn conversations(&self) -> Result<Value, JobError> {
        let pool = self.store.pool();
        let mut tx = pool.begin().await.retryable()?;
        // Messages first: a database Chatter created may not cascade.
        sqlx::query(
            "DELETE FROM messages WHERE conversation_id IN (
                SELECT id FROM conversations
                 WHERE status = 'archived' AND updated_at < now() - interval '730 days')",
        )
        .execute(&mut *tx)
        .await
        .retryable()?;
        let deleted = sqlx::query(
            "DELETE FROM conversations
              WHERE status = 'archived' AND updated_at < now() - interval '730 days'",
        )
        .execute(&mut *tx)
        .await
        .retryable()?
        .rows_affected();
        let archived = sqlx::query(
            "UPDATE conversations SET status = 'archived', updated_at = now()
              WHERE status = 'active'
                AND COALESCE(last_message_at, updated_at) < now() - interval '180 days'",
        )
        .execute(&mut *tx)
        .await
        .retryable()?
        .rows_affected();
        tx.commit().await.retryable()?;
        Ok(json!({"conversations_archived": archived, "conversations_deleted": deleted}))
    }

    async fn vectors(&self) -> Result<Value, JobError> {
        let pool = self.store.pool();
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
        .await
        .retryable()?;
        let mut report = Vec::new();
        for r in rows {
            let schema: String = r.try_get("schemaname").retryable()?;
            let index: String = r.try_get("indexname").retryable()?;
            let table: String = r.try_get("tablename").retryable()?;
            let qi = format!("{}.{}", ident(&schema), ident(&index));
            let qt = format!("{}.{}", ident(&schema), ident(&table));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "REINDEX INDEX CONCURRENTLY {qi}"
            )))
            .execute(pool)
            .await
            .retryable()?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {qt}")))
                .execute(pool)
                .await
                .retryable()?;
            let bytes: i64 = sqlx::query_scalar("SELECT pg_relation_size($1::regclass)")
                .bind(&qi)
                .fetch_one(pool)
                .await
                .retryable()?;
            report.push(json!({"index": index, "table": table, "bytes": bytes}));
        }
        Ok(json!({"indexes": report}))
    }
}

/// A quoted SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
