//! The documents role: register a document, claim it for processing, replace its chunks as one
//! change, mark it failed or processed; and the values these calls carry.
//!
//! Every write that changes a document's chunks or final status checks that its [`Run`] still
//! owns the document: runs serialise, and a run that lost its lease or was superseded by a newer
//! job changes nothing (`StoreError::Superseded`). The chunking handler and `ingest` use this role.
use super::Result;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentStatus {
    Pending,
    Processing,
    Processed,
    Failed,
    Archived,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::Archived => "archived",
        }
    }

    /// The stored spelling read back (unknown values read as `pending`).
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "processing" => Self::Processing,
            "processed" => Self::Processed,
            "failed" => Self::Failed,
            "archived" => Self::Archived,
            _ => Self::Pending,
        }
    }

    /// Processed or failed: nothing more will happen without a new job.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Processed | Self::Failed | Self::Archived)
    }
}

/// What the handlers read of a document.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: String,
    pub owner_id: String,
    pub title: String,
    pub filename: String,
    pub file_path: String,
    pub status: DocumentStatus,
    pub chunk_size: i32,
    pub chunk_overlap: i32,
    pub chunk_count: i32,
    pub processing_error: Option<String>,
}

/// A document to register (`chatter-worker ingest`, tests; Chatter registers its own uploads).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub owner_id: String,
    pub title: String,
    pub filename: String,
    /// A path under the storage root, or an http(s) URL.
    pub file_path: String,
    pub file_size: Option<i64>,
    pub file_hash: Option<String>,
    pub chunk_size: i32,
    pub chunk_overlap: i32,
}

impl NewDocument {
    pub fn new(owner_id: &str, file_path: &str) -> Self {
        let filename = file_path
            .rsplit(['/', '\\'])
            .find(|s| !s.is_empty())
            .unwrap_or(file_path)
            .to_string();
        Self {
            owner_id: owner_id.into(),
            title: filename.clone(),
            filename,
            file_path: file_path.into(),
            file_size: None,
            file_hash: None,
            chunk_size: 1000,
            chunk_overlap: 200,
        }
    }
}

/// One chunk as the splitter produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub id: String,
    pub chunk_index: i32,
    pub content: String,
    pub content_hash: String,
    pub token_count: i32,
    pub start_char: i32,
    pub end_char: i32,
}

/// One run of a job on a document: the job and the claim (fence) it runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub job_id: String,
    pub fence: i64,
}

/// What extraction learned about the file, stored with its chunks.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    pub text: String,
    pub document_type: String,
    pub mime_type: String,
    pub file_size: i64,
    pub file_hash: String,
}

/// Documents and their chunks, as the chunking handler and `ingest` need them.
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync {
    /// Register a document; with a `file_hash` an owner's second copy of the same file returns the
    /// first one's id. Returns (id, created).
    async fn register_document(&self, d: &NewDocument) -> Result<(String, bool)>;

    async fn document(&self, id: &str) -> Result<Option<Document>>;

    /// pending/failed/processed → processing, and `run` takes the document over (an archived
    /// document is left alone: None).
    async fn start_processing(&self, id: &str, run: &Run) -> Result<Option<Document>>;

    /// Replace the document's chunks with `chunks` and store what extraction found, as one
    /// change: readers see the old set or the new one, never a mix or a half. With
    /// `processed`, the document also becomes `processed` (no embedding step follows).
    async fn replace_chunks(
        &self,
        id: &str,
        run: &Run,
        extracted: &Extracted,
        chunks: &[NewChunk],
        processed: bool,
    ) -> Result<()>;

    /// The document failed finally: `failed` with the message, and no chunks left behind.
    async fn fail_document(&self, id: &str, run: &Run, message: &str) -> Result<()>;

    /// Status and error of each listed document.
    async fn statuses(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, DocumentStatus, Option<String>)>>;

    /// The ids of a document's chunks, in order.
    async fn chunk_ids(&self, document_id: &str) -> Result<Vec<String>>;
}
