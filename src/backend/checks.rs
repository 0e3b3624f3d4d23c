//! What every backend's enqueue does around its write: the one check every producer's jobs pass
//! before anything is written (API, CLI, cron, outbox, library: the contract's fields, then the
//! size limits and the scheduling horizon), and the count of what was created after.
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

/// Count the jobs this call created, per queue and kind.
#[cfg_attr(not(feature = "worker"), allow(unused_variables))]
pub fn record_created(jobs: &[chatter_jobs::Job], out: &[super::Enqueued]) {
    #[cfg(feature = "worker")]
    {
        let mut by_kind: std::collections::HashMap<(&str, &str), u64> =
            std::collections::HashMap::new();
        for (job, r) in jobs.iter().zip(out) {
            if r.created {
                *by_kind
                    .entry((job.queue.as_str(), job.function_name.as_str()))
                    .or_default() += 1;
            }
        }
        for ((queue, kind), n) in by_kind {
            crate::metrics::record_enqueued(queue, kind, n);
        }
    }
}
