//! The one check every producer's jobs pass before any backend writes them (API, CLI, cron,
//! outbox, library): the contract's fields, then the size limits and the scheduling horizon.
use super::{QueueError, Result};

/// Check `jobs` against their contract and `limits`; nothing may be written when one fails.
pub fn check(jobs: &[chatter_jobs::Job], limits: &chatter_jobs::JobLimits) -> Result<()> {
    let now = chatter_jobs::Timestamp::now();
    for (index, job) in jobs.iter().enumerate() {
        job.validate()?;
        limits
            .check_at(job, now)
            .map_err(|error| QueueError::Limit {
                index,
                id: job.id.clone(),
                error,
            })?;
    }
    Ok(())
}
