//! PostgreSQL's vectors role, in pgvector: one table per vector space holding each chunk's vector
//! with an HNSW cosine index, one embedding cache table per space, the fenced batch write that
//! does the document's fan-in under the document's row lock, and top-k search.
//!
//! pgvector's HNSW indexes `vector` up to 2,000 dimensions; larger spaces (text-embedding-3-large
//! has 3,072) keep full-precision vectors and index their `halfvec` cast, which search orders by.
use super::Store;
use super::documents::{Locked, lock_document};
use crate::store::vectors::Space;
use crate::store::vectors::{BatchWrite, ChunkText, Hit, IsCurrent, SpaceTables, VectorStore};
use crate::store::{Result, StoreError};
use pgvector::Vector;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

#[async_trait::async_trait]
impl VectorStore for Store {
    async fn ensure_space(&self, space: &Space) -> Result<SpaceTables> {
        let t = SpaceTables::of(space);
        let d = space.dimensions;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('chatter-worker:space:' || $1))")
            .bind(&t.name)
            .execute(&mut *tx)
            .await?;
        let existing: Option<(String, i32)> =
            sqlx::query_as("SELECT model, dimensions FROM embedding_spaces WHERE name = $1")
                .bind(&t.name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((model, dims)) = &existing
            && (*model != space.model || *dims as usize != d)
        {
            return Err(StoreError::Space(format!(
                "space {} belongs to model {model} ({dims} dimensions)",
                t.name
            )));
        }
        {
            // Each `IF NOT EXISTS`: a dropped index (maintenance, a bulk load) comes back here.
            let statements = [
                format!(
                    "CREATE TABLE IF NOT EXISTS {v} (
                        chunk_id     VARCHAR(26) PRIMARY KEY
                                     REFERENCES document_chunks (id) ON DELETE CASCADE,
                        document_id  VARCHAR(26) NOT NULL,
                        owner_id     VARCHAR(64) NOT NULL,
                        content_hash VARCHAR(64) NOT NULL,
                        embedding    vector({d}) NOT NULL,
                        created_at   TIMESTAMPTZ NOT NULL DEFAULT now())",
                    v = t.vectors
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {v}_hnsw ON {v} USING hnsw ({e} {op})
                     WITH (m = 16, ef_construction = 64)",
                    v = t.vectors,
                    e = t.indexed,
                    op = t.opclass()
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {v}_document ON {v} (document_id)",
                    v = t.vectors
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {v}_owner ON {v} (owner_id)",
                    v = t.vectors
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {c} (
                        content_hash VARCHAR(64) PRIMARY KEY,
                        embedding    vector({d}) NOT NULL,
                        created_at   TIMESTAMPTZ NOT NULL DEFAULT now())",
                    c = t.cache
                ),
            ];
            for s in statements {
                sqlx::query(AssertSqlSafe(s)).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO embedding_spaces (name, provider, model, dimensions, vector_table, cache_table)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&t.name)
            .bind(&space.provider)
            .bind(&space.model)
            .bind(d as i32)
            .bind(&t.vectors)
            .bind(&t.cache)
            .execute(&mut *tx)
            .await?;
        }
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
            "SELECT c.id, c.chunk_index, c.content, c.content_hash, v.chunk_id IS NOT NULL AS has_vector
             FROM document_chunks c LEFT JOIN {v} v ON v.chunk_id = c.id
             WHERE c.document_id = $1 AND c.id = ANY($2)",
            v = t.vectors
        )))
        .bind(document_id)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_id: HashMap<String, ChunkText> = rows
            .into_iter()
            .map(|r| {
                let c = ChunkText {
                    id: r.get(0),
                    chunk_index: r.get(1),
                    content: r.get(2),
                    content_hash: r.get(3),
                    has_vector: r.get(4),
                };
                (c.id.clone(), c)
            })
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn cached(
        &self,
        t: &SpaceTables,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let rows: Vec<(String, Vector)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT content_hash, embedding FROM {c} WHERE content_hash = ANY($1)",
            c = t.cache
        )))
        .bind(hashes)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(h, v)| (h, v.to_vec())).collect())
    }

    async fn cache_put(&self, t: &SpaceTables, items: &[(String, Vec<f32>)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let hashes: Vec<&str> = items.iter().map(|(h, _)| h.as_str()).collect();
        let vectors: Vec<Vector> = items.iter().map(|(_, v)| Vector::from(v.clone())).collect();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {c} (content_hash, embedding)
             SELECT * FROM unnest($1::text[], $2::vector[]) ON CONFLICT (content_hash) DO NOTHING",
            c = t.cache
        )))
        .bind(&hashes)
        .bind(&vectors)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // One transaction holding the document's row lock (`lock_document`).
    async fn write_batch(
        &self,
        t: &SpaceTables,
        document_id: &str,
        member: &ChunkText,
        vectors: &[(ChunkText, Vec<f32>)],
        is_current: IsCurrent<'_>,
    ) -> Result<BatchWrite> {
        let mut tx = self.pool.begin().await?;
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
        let ids: Vec<&str> = vectors.iter().map(|(c, _)| c.id.as_str()).collect();
        let hashes: Vec<&str> = vectors
            .iter()
            .map(|(c, _)| c.content_hash.as_str())
            .collect();
        let vecs: Vec<Vector> = vectors
            .iter()
            .map(|(_, v)| Vector::from(v.clone()))
            .collect();
        // Chunks deleted since they were read are skipped by the join.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {v} (chunk_id, document_id, owner_id, content_hash, embedding)
             SELECT n.id, $4, $5, n.hash, n.embedding
             FROM unnest($1::text[], $2::text[], $3::vector[]) AS n (id, hash, embedding)
             JOIN document_chunks c ON c.id = n.id AND c.document_id = $4
             ON CONFLICT (chunk_id) DO NOTHING",
            v = t.vectors
        )))
        .bind(&ids)
        .bind(&hashes)
        .bind(&vecs)
        .bind(document_id)
        .bind(&owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE document_chunks SET embedding_provider = $2, embedding_model = $3,
                 embedding_dimensions = $4
             WHERE id = ANY($1)",
        )
        .bind(&ids)
        .bind(&t.space.provider)
        .bind(&t.space.model)
        .bind(t.space.dimensions as i32)
        .execute(&mut *tx)
        .await?;
        let mut completed = None;
        if status == "processing" {
            let (total, missing): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT count(*), count(*) FILTER (WHERE v.chunk_id IS NULL)
                 FROM document_chunks c LEFT JOIN {v} v ON v.chunk_id = c.id
                 WHERE c.document_id = $1",
                v = t.vectors
            )))
            .bind(document_id)
            .fetch_one(&mut *tx)
            .await?;
            if missing == 0 && total > 0 {
                sqlx::query(
                    "UPDATE documents SET status = 'processed', chunk_count = $2,
                         processing_completed_at = now(), processing_error = NULL, updated_at = now()
                     WHERE id = $1",
                )
                .bind(document_id)
                .bind(total as i32)
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
        let mut tx = self.pool.begin().await?;
        let owns = lock_document(&mut tx, document_id).await?.is_some_and(|l| {
            l.status == "processing" && l.run.as_ref().is_some_and(|r| is_current(r, chunk))
        });
        if !owns {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE documents SET status = 'failed', processing_error = $2,
                 processing_completed_at = now(), updated_at = now()
             WHERE id = $1",
        )
        .bind(document_id)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    // The space's HNSW index: `ef_search` candidates, and an iterative scan when filtered so
    // the filters still fill k.
    async fn search(
        &self,
        t: &SpaceTables,
        query: &[f32],
        k: usize,
        owner: Option<&str>,
        documents: Option<&[String]>,
        ef_search: usize,
    ) -> Result<Vec<Hit>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL hnsw.ef_search = {}",
            ef_search.clamp(1, 1000)
        )))
        .execute(&mut *tx)
        .await?;
        if owner.is_some() || documents.is_some() {
            sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                .execute(&mut *tx)
                .await?;
        }
        let sql = search_sql(t, owner.is_some(), documents.is_some());
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(Vector::from(query.to_vec()))
            .bind(k as i64);
        if let Some(o) = owner {
            q = q.bind(o);
        }
        if let Some(d) = documents {
            q = q.bind(d);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut hits: Vec<Hit> = rows
            .into_iter()
            .map(|r| Hit {
                chunk_id: r.get(0),
                document_id: r.get(1),
                chunk_index: r.get(2),
                content: r.get(3),
                score: 1.0 - r.get::<f64, _>(4),
            })
            .collect();
        // relaxed_order may return neighbours slightly out of order.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }
}

/// The search statement ($1 query vector, $2 k, then owner and documents when filtered).
pub fn search_sql(t: &SpaceTables, owner: bool, documents: bool) -> String {
    let mut filters = Vec::new();
    let mut n = 2;
    if owner {
        n += 1;
        filters.push(format!("v.owner_id = ${n}"));
    }
    if documents {
        n += 1;
        filters.push(format!("v.document_id = ANY(${n})"));
    }
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let e = if t.indexed == "embedding" {
        "v.embedding".to_string()
    } else {
        format!("(v.embedding::{})", t.query_type)
    };
    format!(
        "SELECT c.id, c.document_id, c.chunk_index, c.content, n.distance FROM (
             SELECT v.chunk_id, {e} <=> $1::{q} AS distance FROM {v} v {filter}
             ORDER BY {e} <=> $1::{q} LIMIT $2) n
         JOIN document_chunks c ON c.id = n.chunk_id",
        q = t.query_type,
        v = t.vectors,
    )
}
