//! SQLite's documents role: `documents`, `document_chunks` and `document_runs`, with the
//! behaviour of `store::pg::documents`.
//!
//! Every write that changes a document's chunks or final status runs in a `BEGIN IMMEDIATE`
//! transaction (the file's write lock, PostgreSQL's row lock here) and checks there that its
//! [`Run`] still owns the document (`document_runs`); the vectors role reads the same way
//! ([`lock_document`]) for its fan-in.
use super::{SqliteStore, json_list, now_ms};
use crate::store::documents::{
    Document, DocumentStatus, DocumentStore, Extracted, NewChunk, NewDocument, Run,
};
use crate::store::{Result, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

macro_rules! doc_columns {
    () => {
        "id, owner_id, title, filename, file_path, status, chunk_size, chunk_overlap, \
         chunk_count, processing_error"
    };
}

fn document(row: &SqliteRow) -> Result<Document> {
    Ok(Document {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        title: row.try_get("title")?,
        filename: row.try_get("filename")?,
        file_path: row.try_get("file_path")?,
        status: DocumentStatus::parse(row.try_get("status")?),
        chunk_size: row.try_get("chunk_size")?,
        chunk_overlap: row.try_get("chunk_overlap")?,
        chunk_count: row.try_get("chunk_count")?,
        processing_error: row.try_get("processing_error")?,
    })
}

#[async_trait::async_trait]
impl DocumentStore for SqliteStore {
    async fn register_document(&self, d: &NewDocument) -> Result<(String, bool)> {
        let id = ulid::Ulid::new().to_string();
        let inserted = sqlx::query(
            "INSERT INTO documents (id, owner_id, title, filename, file_path, file_size, file_hash,
                                    chunk_size, chunk_overlap)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (owner_id, file_hash) DO NOTHING
             RETURNING id",
        )
        .bind(&id)
        .bind(&d.owner_id)
        .bind(&d.title)
        .bind(&d.filename)
        .bind(&d.file_path)
        .bind(d.file_size)
        .bind(&d.file_hash)
        .bind(d.chunk_size)
        .bind(d.chunk_overlap)
        .fetch_optional(&self.pool)
        .await?;
        if inserted.is_some() {
            return Ok((id, true));
        }
        let existing: String =
            sqlx::query_scalar("SELECT id FROM documents WHERE owner_id = ?1 AND file_hash = ?2")
                .bind(&d.owner_id)
                .bind(&d.file_hash)
                .fetch_one(&self.pool)
                .await?;
        Ok((existing, false))
    }

    async fn document(&self, id: &str) -> Result<Option<Document>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            doc_columns!(),
            " FROM documents WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(document).transpose()
    }

    async fn start_processing(&self, id: &str, run: &Run) -> Result<Option<Document>> {
        let mut tx = self.write().await?;
        let row = sqlx::query(concat!(
            "UPDATE documents SET status = 'processing', processing_started_at = ",
            now_ms!(),
            ", processing_completed_at = NULL, processing_error = NULL, updated_at = ",
            now_ms!(),
            " WHERE id = ?1 AND status <> 'archived' RETURNING ",
            doc_columns!()
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM documents WHERE id = ?1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(StoreError::NoDocument(id.into())),
            };
        };
        let doc = document(&row)?;
        sqlx::query(concat!(
            "INSERT INTO document_runs (document_id, job_id, fence) VALUES (?1, ?2, ?3)
             ON CONFLICT (document_id) DO UPDATE
             SET job_id = excluded.job_id, fence = excluded.fence, started_at = ",
            now_ms!()
        ))
        .bind(id)
        .bind(&run.job_id)
        .bind(run.fence)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(doc))
    }

    async fn replace_chunks(
        &self,
        id: &str,
        run: &Run,
        extracted: &Extracted,
        chunks: &[NewChunk],
        processed: bool,
    ) -> Result<()> {
        let mut tx = self.clear_chunks(id, run).await?;
        for c in chunks {
            sqlx::query(
                "INSERT INTO document_chunks (id, document_id, chunk_index, content, content_hash,
                                              token_count, start_char, end_char)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(&c.id)
            .bind(id)
            .bind(c.chunk_index)
            .bind(&c.content)
            .bind(&c.content_hash)
            .bind(c.token_count)
            .bind(c.start_char)
            .bind(c.end_char)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(concat!(
            "UPDATE documents SET extracted_text = ?2, document_type = ?3, mime_type = ?4,
                    file_size = ?5, chunk_count = ?7,
                    -- (owner, file_hash) is unique: a copy of another document keeps no hash
                    file_hash = COALESCE(file_hash, CASE WHEN EXISTS (
                        SELECT 1 FROM documents o WHERE o.owner_id = documents.owner_id
                                                    AND o.file_hash = ?6 AND o.id <> documents.id)
                        THEN NULL ELSE ?6 END),
                    status = CASE WHEN ?8 THEN 'processed' ELSE status END,
                    processing_completed_at = CASE WHEN ?8 THEN ",
            now_ms!(),
            " ELSE NULL END, updated_at = ",
            now_ms!(),
            " WHERE id = ?1"
        ))
        .bind(id)
        .bind(&extracted.text)
        .bind(&extracted.document_type)
        .bind(&extracted.mime_type)
        .bind(extracted.file_size)
        .bind(&extracted.file_hash)
        .bind(chunks.len() as i32)
        .bind(processed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fail_document(&self, id: &str, run: &Run, message: &str) -> Result<()> {
        let mut tx = self.clear_chunks(id, run).await?;
        sqlx::query(concat!(
            "UPDATE documents SET status = 'failed', processing_error = ?2, chunk_count = 0,
                    processing_completed_at = NULL, updated_at = ",
            now_ms!(),
            " WHERE id = ?1"
        ))
        .bind(id)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn statuses(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, DocumentStatus, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT id, status, processing_error FROM documents
              WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
        )
        .bind(json_list(ids))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    DocumentStatus::parse(r.try_get("status")?),
                    r.try_get("processing_error")?,
                ))
            })
            .collect()
    }

    async fn chunk_ids(&self, document_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM document_chunks WHERE document_id = ?1 ORDER BY chunk_index",
        )
        .bind(document_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl SqliteStore {
    /// A write transaction that holds the document (still owned by `run`) with its chunks
    /// deleted: the caller writes the new state and commits, or drops it and nothing changed.
    async fn clear_chunks(
        &self,
        id: &str,
        run: &Run,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        let mut tx = self.write().await?;
        lock_for(&mut tx, id, run).await?;
        sqlx::query("DELETE FROM document_chunks WHERE document_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// A document as read inside a write transaction, and the run that owns its processing.
pub(super) struct Locked {
    pub status: String,
    pub owner_id: String,
    pub run: Option<Run>,
}

/// Read a document and who owns its processing inside a `BEGIN IMMEDIATE` transaction (nothing
/// changes them until it ends); None when the document is gone.
pub(super) async fn lock_document(tx: &mut SqliteConnection, id: &str) -> Result<Option<Locked>> {
    let doc: Option<(String, String)> =
        sqlx::query_as("SELECT status, owner_id FROM documents WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, owner_id)) = doc else {
        return Ok(None);
    };
    let run: Option<(String, i64)> =
        sqlx::query_as("SELECT job_id, fence FROM document_runs WHERE document_id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(Some(Locked {
        status,
        owner_id,
        run: run.map(|(job_id, fence)| Run { job_id, fence }),
    }))
}

/// Check, inside a write transaction, that `run` still owns the document.
async fn lock_for(tx: &mut SqliteConnection, id: &str, run: &Run) -> Result<()> {
    let locked = lock_document(tx, id)
        .await?
        .ok_or_else(|| StoreError::NoDocument(id.into()))?;
    match locked.run {
        Some(owner) if owner == *run => Ok(()),
        owner => {
            let Run { job_id, fence } = owner.unwrap_or(Run {
                job_id: String::new(),
                fence: 0,
            });
            Err(StoreError::Superseded {
                document: id.into(),
                job_id,
                fence,
            })
        }
    }
}
