//! The contracts of Chatter's maintenance jobs (queue `maintenance`, no arguments); their
//! handlers (`crate::maintenance`) need the database. Their schedules are in
//! `jobs/schedules.toml`.
use crate::Job;

pub const DATABASE_MAINTENANCE: &str = "database_maintenance";
pub const DOCUMENT_ARCHIVING: &str = "document_archiving";
pub const CONVERSATION_CLEANUP: &str = "conversation_cleanup";
pub const VECTOR_STORE_MAINTENANCE: &str = "vector_store_maintenance";
pub const ALL: [&str; 4] = [
    DATABASE_MAINTENANCE,
    DOCUMENT_ARCHIVING,
    CONVERSATION_CLEANUP,
    VECTOR_STORE_MAINTENANCE,
];

/// These kinds take no arguments: any given is a mistake worth naming.
pub fn check_no_args(job: &Job) -> Result<(), String> {
    if !job.args.is_empty() || !job.kwargs.is_empty() {
        return Err(format!("`{}` takes no arguments", job.function_name));
    }
    Ok(())
}
