//! The job kinds this build ships: the document kinds' contracts (`documents`), and `ping` and
//! `sleep` for tests, benchmarks and smoke checks. Workflows and maintenance arrive with their issues.
use crate::registry::{Registry, queues};

pub mod documents;
pub mod ping;
pub mod sleep;

pub fn register_builtin(r: &mut Registry) {
    r.register(ping::KIND, queues::MAINTENANCE, ping::run);
    r.register_checked(sleep::KIND, queues::MAINTENANCE, sleep::run, sleep::check);
    // Handlers installed by a worker that has a database (`chunk::Chunker::install`).
    r.register_contract(
        documents::CHUNK_DOCUMENT,
        queues::CHUNKING,
        documents::check_chunk,
    );
    r.register_contract(
        documents::EMBED_CHUNKS,
        queues::EMBEDDING,
        documents::check_embed,
    );
}
