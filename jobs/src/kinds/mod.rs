//! The job kinds this build ships: the document kinds' contracts (`documents`), and `ping` and
//! `sleep` for tests, benchmarks and smoke checks, the workflow contract (`workflows`) and
//! Chatter's maintenance jobs (`maintenance`).
use crate::registry::{Registry, queues};

pub mod documents;
pub mod maintenance;
pub mod ping;
pub mod sleep;
pub mod workflows;

impl Registry {
    /// The kinds this build ships (defined here, beside them, so the registry knows no kind).
    pub fn builtin() -> Self {
        let mut r = Self::default();
        register_builtin(&mut r);
        r
    }
}

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
    // Checked at enqueue (an inline definition is validated); the handler (`flow::Runner`)
    // needs the database.
    r.register_contract(
        workflows::RUN_WORKFLOW,
        queues::WORKFLOWS,
        workflows::check_run,
    );
    // Chatter's maintenance jobs (`crate::maintenance` with a database).
    for kind in maintenance::ALL {
        r.register_contract(kind, queues::MAINTENANCE, maintenance::check_no_args);
    }
}
