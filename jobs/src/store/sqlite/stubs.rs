//! Temporary stubs until the embedded store lands (replaced by the real roles).
#![allow(unused_variables)]
use super::SqliteStore;
use crate::store::documents::*;
use crate::store::maintenance::*;
use crate::store::vectors::*;
use crate::store::workflows::*;
use crate::store::*;
use chatter_workflows::state::{Message, State};
use serde_json::Value;
use std::collections::HashMap;

#[async_trait::async_trait]
impl DocumentStore for SqliteStore {
    async fn register_document(&self, d: &NewDocument) -> Result<(String, bool)> {
        todo!()
    }

    async fn document(&self, id: &str) -> Result<Option<Document>> {
        todo!()
    }
    async fn start_processing(&self, id: &str, run: &Run) -> Result<Option<Document>> {
        todo!()
    }
    async fn replace_chunks(
        &self,
        id: &str,
        run: &Run,
        extracted: &Extracted,
        chunks: &[NewChunk],
        processed: bool,
    ) -> Result<()> {
        todo!()
    }
    async fn fail_document(&self, id: &str, run: &Run, message: &str) -> Result<()> {
        todo!()
    }
    async fn statuses(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, DocumentStatus, Option<String>)>> {
        todo!()
    }
    async fn chunk_ids(&self, document_id: &str) -> Result<Vec<String>> {
        todo!()
    }
}

#[async_trait::async_trait]
impl VectorStore for SqliteStore {
    async fn ensure_space(&self, space: &Space) -> Result<SpaceTables> {
        todo!()
    }
    async fn chunk_texts(
        &self,
        t: &SpaceTables,
        document_id: &str,
        ids: &[String],
    ) -> Result<Vec<ChunkText>> {
        todo!()
    }
    async fn cached(
        &self,
        t: &SpaceTables,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        todo!()
    }
    async fn cache_put(&self, t: &SpaceTables, items: &[(String, Vec<f32>)]) -> Result<()> {
        todo!()
    }
    async fn write_batch(
        &self,
        t: &SpaceTables,
        document_id: &str,
        member: &ChunkText,
        vectors: &[(ChunkText, Vec<f32>)],
        is_current: IsCurrent<'_>,
    ) -> Result<BatchWrite> {
        todo!()
    }
    async fn fail_embedding(
        &self,
        document_id: &str,
        chunk: &ChunkText,
        is_current: IsCurrent<'_>,
        message: &str,
    ) -> Result<bool> {
        todo!()
    }
    async fn search(
        &self,
        t: &SpaceTables,
        query: &[f32],
        k: usize,
        owner: Option<&str>,
        documents: Option<&[String]>,
        ef_search: usize,
    ) -> Result<Vec<Hit>> {
        todo!()
    }
}

#[async_trait::async_trait]
impl WorkflowStore for SqliteStore {
    async fn workflow_definition(&self, id: &str, owner: &str) -> Result<Option<Value>> {
        todo!()
    }
    async fn put_workflow_definition(&self, owner: &str, def: &Value) -> Result<String> {
        todo!()
    }
    async fn begin_execution(&self, e: &NewExecution<'_>) -> Result<Begun> {
        todo!()
    }
    async fn save_step(
        &self,
        execution: &str,
        job_id: &str,
        fence: i64,
        state: &State,
    ) -> Result<bool> {
        todo!()
    }
    async fn end_execution(
        &self,
        execution: &str,
        job_id: &str,
        fence: i64,
        end: &Ending<'_>,
    ) -> Result<bool> {
        todo!()
    }
    async fn execution(&self, id: &str) -> Result<Option<Value>> {
        todo!()
    }
    async fn memory_load(&self, owner: &str, key: &str, window: usize) -> Result<Vec<Message>> {
        todo!()
    }
    async fn memory_store(&self, owner: &str, key: &str, messages: &[Message]) -> Result<()> {
        todo!()
    }
    async fn idle_executions(&self, idle_secs: f64, limit: i64) -> Result<Vec<(String, String)>> {
        todo!()
    }
    async fn close_execution(
        &self,
        id: &str,
        job_id: &str,
        status: &str,
        error: &str,
    ) -> Result<bool> {
        todo!()
    }
}

#[async_trait::async_trait]
impl MaintenanceStore for SqliteStore {
    async fn purge_audit_logs(&self, days: i32) -> Result<u64> {
        todo!()
    }
    async fn vacuum_analyze(&self) -> Result<()> {
        todo!()
    }
    async fn archive_documents(&self, idle_days: i32, age_days: i32) -> Result<u64> {
        todo!()
    }
    async fn clean_conversations(
        &self,
        idle_days: i32,
        delete_days: i32,
    ) -> Result<ConversationCleanup> {
        todo!()
    }
    async fn rebuild_vector_indexes(&self) -> Result<Vec<IndexRebuilt>> {
        todo!()
    }
}

#[async_trait::async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<()> {
        todo!()
    }
}
