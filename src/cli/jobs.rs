//! `enqueue` and `jobs`: put one job on its kind's queue (checked as the queue and the kind
//! check it, so a bad job is refused before it is sent), and show, cancel or retry one job by id,
//! wherever it is.
use super::context::{find_job, submit_one};
use crate::backend::CancelResult;
use crate::cli::{EnqueueArgs, JobsAction};
use crate::config::Settings;
use crate::jobs::{JobBuilder, Registry};
use anyhow::{Context, bail};

/// `enqueue`: prints the job's id (with `--json` also whether it was created and its queue).
pub async fn enqueue(
    s: &Settings,
    registry: &Registry,
    a: EnqueueArgs,
    json: bool,
) -> anyhow::Result<()> {
    let spec = registry.resolve(&a.kind)?;
    let args: serde_json::Value =
        serde_json::from_str(&a.args).with_context(|| format!("--args is not JSON: {}", a.args))?;
    let mut b = JobBuilder::new(&a.kind, &spec.queue)
        .arguments(args)
        .priority(a.priority)
        .max_retries(a.max_retries)
        .timeout(a.timeout);
    if let Some(d) = a.delay {
        b = b.delay(d);
    }
    if let Some(k) = a.idempotency_key {
        b = b.idempotency_key(k);
    }
    if let Some(n) = a.name {
        b = b.name(n);
    }
    let job = b.build();
    let r = submit_one(s, registry, &job).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "id": r.id, "created": r.created, "queue": spec.queue })
        );
    } else {
        println!("{}", r.id);
    }
    Ok(())
}

/// `jobs show|cancel|retry ID`.
pub async fn run(s: &Settings, registry: &Registry, action: JobsAction) -> anyhow::Result<()> {
    match action {
        JobsAction::Show { id } => {
            let q = find_job(s, registry, &id).await?;
            let rec = q
                .show(&id)
                .await?
                .with_context(|| format!("job {id} vanished"))?;
            println!("{}", serde_json::to_string_pretty(&rec)?);
        }
        JobsAction::Cancel { id } => {
            let q = find_job(s, registry, &id).await?;
            match q.cancel(&id).await? {
                CancelResult::Cancelled => println!("cancelled {id}"),
                CancelResult::Cancelling => {
                    println!("cancelling {id}: its worker was signalled")
                }
                CancelResult::NotFound => bail!("no job {id}"),
                CancelResult::AlreadyFinished(st) => bail!("job {id} already ended: {st}"),
            }
        }
        JobsAction::Retry { id } => {
            let q = find_job(s, registry, &id).await?;
            if q.replay(Some(&id), 1).await? == 0 {
                bail!("job {id} is not dead-lettered (only dead jobs can be retried)");
            }
            println!("replayed {id}");
        }
    }
    Ok(())
}
