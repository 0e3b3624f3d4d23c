//! Chatter's maintenance jobs (CHATTER_CONTRACTS.md, "Seeded cron schedules"): the policy here,
//! the writes in the store's maintenance role. Each is safe to run twice: a second run finds
//! nothing left to change.
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
use crate::store::MaintenanceStore;
use crate::{ErrorExt, JobError};
use serde_json::{Value, json};
use std::sync::Arc;

/// Audit log entries older than this are deleted.
const AUDIT_LOG_DAYS: i32 = 365;
/// Processed documents unchanged this long are archived,
const DOCUMENT_IDLE_DAYS: i32 = 90;
/// and so are those older than this.
const DOCUMENT_AGE_DAYS: i32 = 365;
/// Active conversations idle this long are archived.
const CONVERSATION_IDLE_DAYS: i32 = 180;
/// Archived conversations untouched this long are deleted with their messages.
const CONVERSATION_DELETE_DAYS: i32 = 730;

pub struct Maintenance {
    store: Arc<dyn MaintenanceStore>,
}

impl Maintenance {
    pub fn new(store: impl MaintenanceStore + 'static) -> Self {
        Self {
            store: Arc::new(store),
        }
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
        let deleted = self
            .store
            .purge_audit_logs(AUDIT_LOG_DAYS)
            .await
            .retryable()?;
        self.store.vacuum_analyze().await.retryable()?;
        Ok(json!({"audit_logs_deleted": deleted, "vacuum_analyze": true}))
    }

    async fn documents(&self) -> Result<Value, JobError> {
        let archived = self
            .store
            .archive_documents(DOCUMENT_IDLE_DAYS, DOCUMENT_AGE_DAYS)
            .await
            .retryable()?;
        Ok(json!({"documents_archived": archived}))
    }

    async fn conversations(&self) -> Result<Value, JobError> {
        let done = self
            .store
            .clean_conversations(CONVERSATION_IDLE_DAYS, CONVERSATION_DELETE_DAYS)
            .await
            .retryable()?;
        Ok(json!({"conversations_archived": done.archived, "conversations_deleted": done.deleted}))
    }

    async fn vectors(&self) -> Result<Value, JobError> {
        let rebuilt = self.store.rebuild_vector_indexes().await.retryable()?;
        let report: Vec<Value> = rebuilt
            .into_iter()
            .map(|r| json!({"index": r.index, "table": r.table, "bytes": r.bytes}))
            .collect();
        Ok(json!({"indexes": report}))
    }
}
