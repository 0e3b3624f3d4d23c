//! `sleep {ms, cpu?, fail_attempts?, fatal?}`: waits `ms` milliseconds, reporting progress.
//!
//! `cpu: true` spins on the blocking pool instead of sleeping (a CPU-heavy handler that must not
//! starve the reactor); `fail_attempts: n` fails with a retryable error on the first n attempts;
//! `fatal: true` fails finally. Used by tests, benchmarks and operators checking a deployment.
use crate::{ErrorExt, Job, JobContext, JobError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const KIND: &str = "sleep";

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    pub ms: u64,
    #[serde(default)]
    pub cpu: bool,
    #[serde(default)]
    pub fail_attempts: u32,
    #[serde(default)]
    pub fatal: bool,
}

pub fn check(job: &Job) -> Result<(), String> {
    job.kwargs_as::<SleepArgs>().map(|_| ())
}

pub async fn run(job: Job, ctx: JobContext) -> Result<Value, JobError> {
    let args: SleepArgs = job.kwargs_as().fatal()?;
    if args.fatal {
        return Err(JobError::Fatal("sleep asked to fail finally".into()));
    }
    if ctx.attempt <= args.fail_attempts {
        return Err(JobError::Retry(format!(
            "sleep asked to fail attempt {} of the first {}",
            ctx.attempt, args.fail_attempts
        )));
    }
    let d = Duration::from_millis(args.ms);
    if args.cpu {
        let cancel = ctx.cancel.clone();
        ctx.blocking(move || {
            let start = Instant::now();
            while start.elapsed() < d && !cancel.is_cancelled() {
                std::hint::spin_loop();
            }
        })
        .await?;
    } else {
        ctx.progress(0, "sleeping");
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        }
    }
    if ctx.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    ctx.progress(100, "done");
    Ok(json!({ "slept_ms": args.ms }))
}
