//! The document job contracts: `chunk_document` (queue `chunking`) and `embed_chunks` (queue
//! `embedding`). Producers build and check these payloads without the handlers' dependencies; the
//! chunking handler lives in `crate::chunk`, the embedding handler arrives with its issue.
use crate::{Job, JobBuilder};
use serde::{Deserialize, Serialize};

pub const CHUNK_DOCUMENT: &str = "chunk_document";
pub const EMBED_CHUNKS: &str = "embed_chunks";

/// `chunk_document {document_id}`: extract, split and store one document's chunks.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChunkDocumentArgs {
    pub document_id: String,
    /// Chunk size in tokens; default: the document's `chunk_size` characters at 4 per token,
    /// capped by the embedding model's input limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Overlap in tokens; default: the document's `chunk_overlap` characters at 4 per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_tokens: Option<usize>,
}

/// `embed_chunks {document_id, chunk_ids}`: embed one batch of a document's chunks.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbedChunksArgs {
    pub document_id: String,
    pub chunk_ids: Vec<String>,
    /// The claim (fence) of the chunking run that wrote these chunks: a batch of an earlier
    /// attempt of the same job (same chunk ids) is then told apart from the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_fence: Option<i64>,
}

fn is_ulid(field: &str, v: &str) -> Result<(), String> {
    ulid::Ulid::from_string(v)
        .map(|_| ())
        .map_err(|_| format!("`{field}` {v:?} is not a ULID"))
}

pub fn check_chunk(job: &Job) -> Result<(), String> {
    let a: ChunkDocumentArgs = job.kwargs_as()?;
    is_ulid("document_id", &a.document_id)?;
    if let (Some(size), Some(overlap)) = (a.max_tokens, a.overlap_tokens)
        && overlap >= size
    {
        return Err(format!(
            "`overlap_tokens` {overlap} must be smaller than `max_tokens` {size}"
        ));
    }
    if a.max_tokens == Some(0) {
        return Err("`max_tokens` must be at least 1".into());
    }
    Ok(())
}

pub fn check_embed(job: &Job) -> Result<(), String> {
    let a: EmbedChunksArgs = job.kwargs_as()?;
    is_ulid("document_id", &a.document_id)?;
    if a.chunk_ids.is_empty() {
        return Err("`chunk_ids` is empty".into());
    }
    a.chunk_ids
        .iter()
        .try_for_each(|id| is_ulid("chunk_ids", id))
}

fn to_kwargs<T: Serialize>(args: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(args) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// A `chunk_document` job for one document.
pub fn chunk_job(args: &ChunkDocumentArgs) -> JobBuilder {
    JobBuilder::new(CHUNK_DOCUMENT, crate::registry::queues::CHUNKING).kwargs(to_kwargs(args))
}

/// An `embed_chunks` job for one batch.
pub fn embed_job(args: &EmbedChunksArgs) -> JobBuilder {
    JobBuilder::new(EMBED_CHUNKS, crate::registry::queues::EMBEDDING).kwargs(to_kwargs(args))
}
