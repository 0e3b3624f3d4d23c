//! Storage of the job handlers, as one trait per role: [`DocumentStore`] (documents and their
//! chunks), [`VectorStore`] (chunk vectors, the embedding cache, search), [`WorkflowStore`]
//! (definitions, executions, checkpoints, memory) and [`MaintenanceStore`] (the maintenance
//! jobs' housekeeping). Handlers hold the role they need and never write SQL of their own.
//!
//! [`Store`] is the PostgreSQL/pgvector backend (`pg`); the embedded SQLite default slots in
//! as a second implementation of the same roles.
pub mod documents;
pub mod maintenance;
mod pg;
pub mod sqlite;
pub mod vectors;
pub mod workflows;

pub use documents::{
    Document, DocumentStatus, DocumentStore, Extracted, NewChunk, NewDocument, Run,
};
pub use maintenance::MaintenanceStore;
pub use pg::{MIGRATOR, Store, search_sql};
pub use sqlite::SqliteStore;
pub use vectors::VectorStore;
pub use workflows::WorkflowStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not marked as the source: its message is already in ours, once.
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("bad DATABASE_URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("no document {0}")]
    NoDocument(String),
    /// A vector space's tables exist for another model.
    #[error("vector space: {0}")]
    Space(String),
    /// A stored value that cannot be read back (or a value that cannot be stored).
    #[error("stored data: {0}")]
    Data(String),
    /// Another run took the document over (this one lost its lease, or a newer job started).
    #[error("document {document} is now processed by job {job_id} (claim {fence})")]
    Superseded {
        document: String,
        job_id: String,
        fence: i64,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether the store answers (readiness checks).
#[async_trait::async_trait]
pub trait StoreHealth: Send + Sync {
    /// One round trip.
    async fn ping(&self) -> Result<()>;
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl StoreError {
    /// The server could not be reached (down, refused, timed out), as opposed to refusing us.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        )
    }
}
