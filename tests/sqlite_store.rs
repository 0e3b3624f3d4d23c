//! The embedded store (`SqliteStore`) on a fresh SQLite file per test: every role behaves as the
//! PostgreSQL store, its spec. The documents and workflows scenarios return a transcript of what
//! the store answered; `*_as_postgres` runs the same scenario on both stores and compares the
//! transcripts (PostgreSQL at DATABASE_URL, a schema per test). Search is checked against a
//! brute-force cosine ranking computed here.
#[path = "sqlite_store/documents.rs"]
mod documents;
#[path = "sqlite_store/kit.rs"]
mod kit;
#[path = "sqlite_store/maintenance.rs"]
mod maintenance;
#[path = "sqlite_store/vectors.rs"]
mod vectors;
#[path = "sqlite_store/workflows.rs"]
mod workflows;
