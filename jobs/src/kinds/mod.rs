//! The job kinds this build ships. Real kinds (chunking, embedding, workflows, maintenance) arrive
//! with their issues; `ping` and `sleep` exist for tests, benchmarks and smoke checks.
use crate::registry::{Registry, queues};

pub mod ping;
pub mod sleep;

pub fn register_builtin(r: &mut Registry) {
    r.register(ping::KIND, queues::MAINTENANCE, ping::run);
    r.register_checked(sleep::KIND, queues::MAINTENANCE, sleep::run, sleep::check);
}
