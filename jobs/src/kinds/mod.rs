//! The job kinds this build ships: the document kinds' contracts (`documents`), and `ping` and
//! `sleep` for tests, benchmarks and smoke checks, and the workflow contract (`workflows`).
//! Maintenance arrives with its issue.
use crate::registry::{Registry, queues};

pub mod documents;
pub mod ping;
pub mod sleep;
pub mod workflows;

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
    // Checked at enqueue (an inline definition is validated); the handler comes with the
    // executor's wiring.
    r.register_contract(
        workflows::RUN_WORKFLOW,
        queues::WORKFLOWS,
        workflows::check_run,
    );
}
