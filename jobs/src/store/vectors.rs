//! The vectors role: one vector space per model and dimensions holding each chunk's vector at
//! full size, one embedding cache per space keyed by content hash, the fenced write of a batch
//! that also does the document's fan-in, and top-k search by cosine similarity.
//!
//! The embedding handler (and the `search` it serves to workflows and the CLI) uses this role.
use super::Result;
use crate::store::Run;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The vector space a provider writes into: vectors of different models or dimensions never mix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Space {
    /// `openai` or `local` (written to `document_chunks.embedding_provider`).
    pub provider: String,
    pub model: String,
    pub dimensions: usize,
}

/// The largest dimension pgvector's HNSW indexes as `vector`.
const HNSW_MAX_VECTOR_DIMS: usize = 2000;

/// One space's tables. The names and the indexed expression follow pgvector (the production
/// backend); the model, its dimensions and `name` identify the space in any backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceTables {
    pub space: Space,
    pub name: String,
    pub vectors: String,
    pub cache: String,
    /// The expression the HNSW index is on, and search orders by.
    pub indexed: String,
    /// Its operand type for a query vector (`vector(D)` or `halfvec(D)`).
    pub query_type: String,
}

impl SpaceTables {
    pub fn of(space: &Space) -> Self {
        let slug: String = space
            .model
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(24)
            .collect();
        let mut h = Sha256::new();
        h.update(space.model.as_bytes());
        let name = format!(
            "{slug}_{}_{}",
            space.dimensions,
            &hex::encode(h.finalize())[..8]
        );
        let d = space.dimensions;
        let (indexed, query_type) = if d > HNSW_MAX_VECTOR_DIMS {
            (
                format!("(embedding::halfvec({d}))"),
                format!("halfvec({d})"),
            )
        } else {
            ("embedding".to_string(), format!("vector({d})"))
        };
        Self {
            vectors: format!("chunk_vectors_{name}"),
            cache: format!("embedding_cache_{name}"),
            name,
            indexed,
            query_type,
            space: space.clone(),
        }
    }

    /// The HNSW operator class of the indexed expression.
    pub(crate) fn opclass(&self) -> &'static str {
        if self.space.dimensions > HNSW_MAX_VECTOR_DIMS {
            "halfvec_cosine_ops"
        } else {
            "vector_cosine_ops"
        }
    }
}

/// One search result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub chunk_id: String,
    pub document_id: String,
    pub chunk_index: i32,
    pub content: String,
    /// Cosine similarity, 1 = same direction.
    pub score: f64,
}

/// A chunk to embed, as the handler reads it.
#[derive(Debug, Clone)]
pub struct ChunkText {
    pub id: String,
    pub chunk_index: i32,
    pub content: String,
    pub content_hash: String,
    pub has_vector: bool,
}

/// What writing a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchWrite {
    /// Vectors written; `completed` carries the document's chunk count when this batch was its
    /// last, and this call the one that marked it processed.
    Written { rows: u64, completed: Option<i32> },
    /// The document is gone or no longer processing these chunks: nothing written.
    Stale(String),
}

/// Whether a batch (any of its chunks) belongs to the run that now owns the document.
pub type IsCurrent<'a> = &'a (dyn Fn(&Run, &ChunkText) -> bool + Send + Sync);

/// Chunk vectors, their cache, and search, as the embedding handler needs them.
#[async_trait::async_trait]
pub trait VectorStore: Send + Sync {
    /// Create a space's tables and index when absent (idempotent, safe from many processes).
    async fn ensure_space(&self, space: &Space) -> Result<SpaceTables>;

    /// The batch's chunks that still exist (in the order asked), with whether each has a vector.
    async fn chunk_texts(
        &self,
        t: &SpaceTables,
        document_id: &str,
        ids: &[String],
    ) -> Result<Vec<ChunkText>>;

    /// Cached vectors of these content hashes.
    async fn cached(&self, t: &SpaceTables, hashes: &[String])
    -> Result<HashMap<String, Vec<f32>>>;

    /// Remember vectors by content hash (first writer wins; the same text has the same vector).
    async fn cache_put(&self, t: &SpaceTables, items: &[(String, Vec<f32>)]) -> Result<()>;

    /// Write one batch's vectors and, when they were the document's last missing ones, mark it
    /// `processed`, as one change that holds the document's lock, so batches finishing together
    /// serialise and exactly one of them sees the document complete. `is_current` tells whether
    /// the batch (any of its chunks, `member`) belongs to the run that now owns the document
    /// (given that run's job id and fence); a stale batch writes nothing.
    async fn write_batch(
        &self,
        t: &SpaceTables,
        document_id: &str,
        member: &ChunkText,
        vectors: &[(ChunkText, Vec<f32>)],
        is_current: IsCurrent<'_>,
    ) -> Result<BatchWrite>;

    /// Mark a document failed by an embedding batch of its current run (fenced like
    /// [`VectorStore::write_batch`]); false when the batch is stale or the document already final.
    async fn fail_embedding(
        &self,
        document_id: &str,
        chunk: &ChunkText,
        is_current: IsCurrent<'_>,
        message: &str,
    ) -> Result<bool>;

    /// Top-k chunks by cosine similarity to `query` in one space, optionally only an owner's and
    /// only some documents'. `ef_search`: the candidates an approximate index considers.
    async fn search(
        &self,
        t: &SpaceTables,
        query: &[f32],
        k: usize,
        owner: Option<&str>,
        documents: Option<&[String]>,
        ef_search: usize,
    ) -> Result<Vec<Hit>>;
}
