//! The one submit path every producer's jobs take: resolve the kind, check the envelope, the size
//! limits and scheduling horizon, and the kind's own argument check, then enqueue on the kind's
//! queue. Receives built [`Job`]s; hands back one [`Enqueued`] per job, in order.
//!
//! The API, the CLI, cron ticks, the handlers' outbox and Rust library producers all submit
//! through [`Submitter`], so a job no kind accepts never reaches a queue. (The queue checks the
//! envelope and limits again on enqueue: a producer holding a bare queue handle cannot skip those.)
use crate::backend::{Backend, Enqueued, QueueError, QueueOptions};
use chatter_jobs::{Job, JobLimits, Registry, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a job was not submitted; `index` is its place in the batch. The texts are the ones each
/// check has always given (the CLI prints them as they are).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    UnknownKind(#[from] chatter_jobs::registry::UnknownKind),
    /// The envelope: a field out of range or missing.
    #[error(transparent)]
    Invalid(#[from] chatter_jobs::envelope::InvalidJob),
    /// Over a size limit or scheduled beyond the horizon.
    #[error("job {index} ({id}): {error}")]
    Limit {
        index: usize,
        id: String,
        error: chatter_jobs::LimitError,
    },
    /// The kind's own check of its arguments refused them.
    #[error("{message}")]
    Args { index: usize, message: String },
    #[error("job {index}: kind {kind:?} runs on queue {queue:?}, not {job_queue:?}")]
    WrongQueue {
        index: usize,
        kind: String,
        queue: String,
        job_queue: String,
    },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Check a job against its kind: the kind exists, the envelope is well formed, the sizes are
/// within `limits` at `now`, and the kind accepts its arguments. Returns the kind's queue.
pub fn check_job<'r>(
    registry: &'r Registry,
    limits: &JobLimits,
    job: &Job,
    index: usize,
    now: Timestamp,
) -> Result<&'r str, SubmitError> {
    let spec = registry.resolve(&job.function_name)?;
    job.validate()?;
    // Sizes before the kind's check: that may walk the arguments (a workflow definition).
    limits
        .check_at(job, now)
        .map_err(|error| SubmitError::Limit {
            index,
            id: job.id.clone(),
            error,
        })?;
    (spec.check)(job).map_err(|message| SubmitError::Args { index, message })?;
    if job.queue != spec.queue {
        return Err(SubmitError::WrongQueue {
            index,
            kind: spec.name.clone(),
            queue: spec.queue.clone(),
            job_queue: job.queue.clone(),
        });
    }
    Ok(&spec.queue)
}

/// A batch every job of which passed [`check_job`], grouped by its kind's queue (indices into
/// the batch, in order): what [`Submitter::enqueue`] takes, so nothing is checked twice.
pub struct Checked<'a> {
    jobs: &'a [Job],
    by_queue: BTreeMap<String, Vec<usize>>,
}

/// Check every job of a batch (the first refusal ends it: nothing of the batch is enqueued).
pub fn check<'a>(
    registry: &Registry,
    limits: &JobLimits,
    jobs: &'a [Job],
) -> Result<Checked<'a>, SubmitError> {
    let now = Timestamp::now();
    let mut by_queue: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let q = check_job(registry, limits, job, i, now)?;
        by_queue.entry(q.to_string()).or_default().push(i);
    }
    Ok(Checked { jobs, by_queue })
}

/// Submits jobs to the queues of their kinds on one backend.
#[derive(Clone)]
pub struct Submitter {
    backend: Arc<dyn Backend>,
    registry: Registry,
    options: QueueOptions,
}

impl Submitter {
    pub fn new(backend: Arc<dyn Backend>, registry: Registry, options: QueueOptions) -> Self {
        Self {
            backend,
            registry,
            options,
        }
    }

    /// Check every job first (nothing is enqueued when one fails), then enqueue them grouped by
    /// queue; results come back in the order of `jobs`.
    pub async fn submit(&self, jobs: &[Job]) -> Result<Vec<Enqueued>, SubmitError> {
        let checked = check(&self.registry, &self.options.limits, jobs)?;
        self.enqueue(checked).await
    }

    /// Submit one job.
    pub async fn submit_one(&self, job: &Job) -> Result<Enqueued, SubmitError> {
        Ok(self.submit(std::slice::from_ref(job)).await?.remove(0))
    }

    /// Enqueue a checked batch, one call per queue; results in the order of the batch.
    pub async fn enqueue(&self, checked: Checked<'_>) -> Result<Vec<Enqueued>, SubmitError> {
        let Checked { jobs, by_queue } = checked;
        let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
        for (name, idx) in by_queue {
            let q = self.backend.queue(&name, self.options.clone());
            let batch: Vec<Job> = idx.iter().map(|&i| jobs[i].clone()).collect();
            let done = q.enqueue_batch(&batch).await.map_err(|e| match e {
                // The queue numbers its own sub-batch; the caller's numbering is `idx`.
                QueueError::Limit { index, id, error } => SubmitError::Limit {
                    index: idx.get(index).copied().unwrap_or(index),
                    id,
                    error,
                },
                other => SubmitError::Queue(other),
            })?;
            if done.len() != batch.len() {
                return Err(SubmitError::Queue(QueueError::Reply {
                    script: "enqueue",
                    detail: format!("{} results for {} jobs", done.len(), batch.len()),
                }));
            }
            for (i, e) in idx.into_iter().zip(done) {
                out[i] = Some(e);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}
