//! SQLite's vectors role, with the behaviour of `store::pg::vectors`: one table of BLOB vectors
//! per space (named as pgvector's, `SpaceTables`), one embedding cache table per space, the
//! fenced batch write that does the document's fan-in inside one `BEGIN IMMEDIATE`
//! transaction, and EXACT top-k search: every vector of the space passing the filters is
//! compared in Rust (`cosine`), so there is no index and `ef_search` has nothing to tune.
use super::cosine::{TopK, as_compared, distance, from_blob, to_blob};
use super::documents::{Locked, lock_document};
use super::{SqliteStore, ident, json_list, now_ms};
use crate::store::vectors::{
    BatchWrite, ChunkText, Hit, IsCurrent, Space, SpaceTables, VectorStore,
};
use crate::store::{Result, StoreError};
use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// Refuse a vector of the wrong size before anything is written (pgvector refuses it too).
fn check_dims(t: &SpaceTables, what: &str, v: &[f32]) -> Result<()> {
    if v.len() == t.space.dimensions {
        return Ok(());
    }
    Err(StoreError::Data(format!(
        "{what} has {} dimensions, space {} has {}",
        v.len(),
        t.name,
        t.space.dimensions
    )))
}

#[async_trait::async_trait]
impl VectorStore for SqliteStore {
    async fn ensure_space(&self, space: &Space) -> Result<SpaceTables> {
        let t = SpaceTables::of(space);
        let d = space.dimensions;
        let mut tx = self.write().await?;
        let existing: Option<(String, i64)> =
            sqlx::query_as("SELECT model, dimensions FROM embedding_spaces WHERE name = ?1")
                .bind(&t.name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((model, dims)) = &existing
            && (*model != space.model || *dims != d as i64)
        {
            return Err(StoreError::Space(format!(
                "space {} belongs to model {model} ({dims} dimensions)",
                t.name
            )));
        }
        let (v, c) = (ident(&t.vectors), ident(&t.cache));
        let statements = [
            format!(
                "CREATE TABLE IF NOT EXISTS {v} (
                    chunk_id     TEXT    PRIMARY KEY
                                 REFERENCES document_chunks (id) ON DELETE CASCADE,
                    document_id  TEXT    NOT NULL,
                    owner_id     TEXT    NOT NULL,
                    content_hash TEXT    NOT NULL,
                    embedding    BLOB    NOT NULL CHECK (length(embedding) = {bytes}),
                    created_at   INTEGER NOT NULL DEFAULT ({now}))",
                bytes = d * 4,
                now = now_ms!()
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {v} (document_id)",
                ident(&format!("{}_document", t.vectors))
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {v} (owner_id)",
                ident(&format!("{}_owner", t.vectors))
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {c} (
                    content_hash TEXT    PRIMARY KEY,
                    embedding    BLOB    NOT NULL CHECK (length(embedding) = {bytes}),
                    created_at   INTEGER NOT NULL DEFAULT ({now}))",
                bytes = d * 4,
                now = now_ms!()
            ),
        ];
        for s in statements {
            sqlx::query(AssertSqlSafe(s)).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO embedding_spaces (name, provider, model, dimensions, vector_table, cache_table)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&t.name)
        .bind(&space.provider)
        .bind(&space.model)
        .bind(d as i64)
        .bind(&t.vectors)
        .bind(&t.cache)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn chunk_texts(
        &self,
        t: &SpaceTables,
        document_id: &str,
        ids: &[String],
    ) -> Result<Vec<ChunkText>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT c.id, c.chunk_index, c.content, c.content_hash,
                    v.chunk_id IS NOT NULL AS has_vector
             FROM document_chunks c LEFT JOIN {v} v ON v.chunk_id = c.id
             WHERE c.document_id = ?1 AND c.id IN (SELECT value FROM json_each(?2))",
            v = ident(&t.vectors)
        )))
        .bind(document_id)
        .bind(json_list(ids))
        .fetch_all(&self.pool)
        .await?;
        let mut by_id = HashMap::with_capacity(rows.len());
        for r in rows {
            let c = ChunkText {
                id: r.try_get(0)?,
                chunk_index: r.try_get(1)?,
                content: r.try_get(2)?,
                content_hash: r.try_get(3)?,
                has_vector: r.try_get(4)?,
            };
            by_id.insert(c.id.clone(), c);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn cached(
        &self,
        t: &SpaceTables,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT content_hash, embedding FROM {c}
              WHERE content_hash IN (SELECT value FROM json_each(?1))",
            c = ident(&t.cache)
        )))
        .bind(json_list(hashes))
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for (hash, blob) in rows {
            match from_blob(&blob, t.space.dimensions) {
                Some(v) => {
                    out.insert(hash, v);
                }
                // A miss: the caller embeds the text again and `cache_put` replaces the entry.
                None => tracing::warn!(
                    cache = %t.cache, %hash, bytes = blob.len(),
                    "unreadable cached embedding (wrong length): ignored"
                ),
            }
        }
        Ok(out)
    }

    async fn cache_put(&self, t: &SpaceTables, items: &[(String, Vec<f32>)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        for (hash, v) in items {
            check_dims(t, &format!("the embedding of content {hash}"), v)?;
        }
        let sql = format!(
            "INSERT INTO {c} (content_hash, embedding) VALUES (?1, ?2)
             ON CONFLICT (content_hash) DO UPDATE SET embedding = excluded.embedding
             WHERE length(embedding) <> ?3",
            c = ident(&t.cache)
        );
        let mut tx = self.write().await?;
        for (hash, v) in items {
            // First writer wins (an unreadable entry is replaced).
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(hash)
                .bind(to_blob(v))
                .bind((t.space.dimensions * 4) as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_batch(
        &self,
        t: &SpaceTables,
        document_id: &str,
        member: &ChunkText,
        vectors: &[(ChunkText, Vec<f32>)],
        is_current: IsCurrent<'_>,
    ) -> Result<BatchWrite> {
        for (c, v) in vectors {
            check_dims(t, &format!("the vector of chunk {}", c.id), v)?;
        }
        let mut tx = self.write().await?;
        let Some(Locked {
            status,
            owner_id: owner,
            run,
        }) = lock_document(&mut tx, document_id).await?
        else {
            return Ok(BatchWrite::Stale(format!("document {document_id} is gone")));
        };
        if !run.as_ref().is_some_and(|r| is_current(r, member)) {
            return Ok(BatchWrite::Stale(format!(
                "document {document_id} is now processed by {}",
                run.map_or("no run".to_string(), |r| format!(
                    "job {} (claim {})",
                    r.job_id, r.fence
                ))
            )));
        }
        // Chunks deleted since they were read are skipped.
        let insert = format!(
            "INSERT INTO {v} (chunk_id, document_id, owner_id, content_hash, embedding)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (
                 SELECT 1 FROM document_chunks c WHERE c.id = ?1 AND c.document_id = ?2)
             ON CONFLICT (chunk_id) DO NOTHING",
            v = ident(&t.vectors)
        );
        let mut rows = 0;
        for (c, v) in vectors {
            rows += sqlx::query(AssertSqlSafe(insert.clone()))
                .bind(&c.id)
                .bind(document_id)
                .bind(&owner)
                .bind(&c.content_hash)
                .bind(to_blob(v))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let ids: Vec<&str> = vectors.iter().map(|(c, _)| c.id.as_str()).collect();
        sqlx::query(
            "UPDATE document_chunks SET embedding_provider = ?2, embedding_model = ?3,
                 embedding_dimensions = ?4
             WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&ids))
        .bind(&t.space.provider)
        .bind(&t.space.model)
        .bind(t.space.dimensions as i64)
        .execute(&mut *tx)
        .await?;
        let mut completed = None;
        if status == "processing" {
            let (total, missing): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT count(*), count(*) FILTER (WHERE v.chunk_id IS NULL)
                 FROM document_chunks c LEFT JOIN {v} v ON v.chunk_id = c.id
                 WHERE c.document_id = ?1",
                v = ident(&t.vectors)
            )))
            .bind(document_id)
            .fetch_one(&mut *tx)
            .await?;
            if missing == 0 && total > 0 {
                sqlx::query(concat!(
                    "UPDATE documents SET status = 'processed', chunk_count = ?2,
                         processing_completed_at = ",
                    now_ms!(),
                    ", processing_error = NULL, updated_at = ",
                    now_ms!(),
                    " WHERE id = ?1"
                ))
                .bind(document_id)
                .bind(total)
                .execute(&mut *tx)
                .await?;
                completed = Some(total as i32);
            }
        }
        tx.commit().await?;
        Ok(BatchWrite::Written { rows, completed })
    }

    async fn fail_embedding(
        &self,
        document_id: &str,
        chunk: &ChunkText,
        is_current: IsCurrent<'_>,
        message: &str,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let owns = lock_document(&mut tx, document_id).await?.is_some_and(|l| {
            l.status == "processing" && l.run.as_ref().is_some_and(|r| is_current(r, chunk))
        });
        if !owns {
            return Ok(false);
        }
        sqlx::query(concat!(
            "UPDATE documents SET status = 'failed', processing_error = ?2,
                 processing_completed_at = ",
            now_ms!(),
            ", updated_at = ",
            now_ms!(),
            " WHERE id = ?1"
        ))
        .bind(document_id)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    // Exact: every vector passing the filters is compared; `ef_search` has no index to tune.
    async fn search(
        &self,
        t: &SpaceTables,
        query: &[f32],
        k: usize,
        owner: Option<&str>,
        documents: Option<&[String]>,
        _ef_search: usize,
    ) -> Result<Vec<Hit>> {
        check_dims(t, "the query vector", query)?;
        let dims = t.space.dimensions;
        let query = as_compared(query, dims).ok_or_else(|| {
            StoreError::Data(format!(
                "the query vector has a value out of range for halfvec ({} compares halfvec)",
                t.name
            ))
        })?;
        // Filtered as `search_sql` filters: only the parameters in use are bound.
        let mut filters = vec!["1".to_string()];
        if owner.is_some() {
            filters.push(format!("owner_id = ?{}", filters.len()));
        }
        if documents.is_some() {
            filters.push(format!(
                "document_id IN (SELECT value FROM json_each(?{}))",
                filters.len()
            ));
        }
        let sql = format!(
            "SELECT chunk_id, embedding FROM {v} WHERE {f}",
            v = ident(&t.vectors),
            f = filters.join(" AND ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(o) = owner {
            q = q.bind(o);
        }
        if let Some(d) = documents {
            q = q.bind(json_list(d));
        }
        let mut top = TopK::new(k);
        {
            let mut rows = q.fetch(&self.pool);
            while let Some(r) = rows.try_next().await? {
                let id: String = r.try_get(0)?;
                let blob: &[u8] = r.try_get(1)?;
                match from_blob(blob, dims).and_then(|v| as_compared(&v, dims)) {
                    Some(v) => top.push(distance(&query, &v), id),
                    None => tracing::warn!(
                        table = %t.vectors, chunk = %id, bytes = blob.len(),
                        "unreadable vector (wrong length or out of halfvec range): not searched"
                    ),
                }
            }
        }
        let nearest = top.into_sorted();
        let ids: Vec<&str> = nearest.iter().map(|(_, id)| id.as_str()).collect();
        let rows = sqlx::query(
            "SELECT id, document_id, chunk_index, content FROM document_chunks
              WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&ids))
        .fetch_all(&self.pool)
        .await?;
        let mut chunks = HashMap::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            chunks.insert(id, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
        let mut hits: Vec<Hit> = nearest
            .into_iter()
            .filter_map(|(d, id)| {
                let (document_id, chunk_index, content) = chunks.remove(&id)?;
                Some(Hit {
                    chunk_id: id,
                    document_id,
                    chunk_index,
                    content,
                    score: 1.0 - d,
                })
            })
            .collect();
        // As the PostgreSQL store orders its hits.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }
}
