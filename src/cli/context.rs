//! What every command starts from: the settings (the TOML file, then the global flags and their
//! environment variables) and handles on the queues a command names: one by name, every known
//! one, the one holding a job. Errors name what was asked for and what exists.
use crate::backend::Enqueued;
use crate::backend::{Backend, Queue};
use crate::cli::Cli;
use crate::config::Settings;
use crate::jobs::Job;
use crate::jobs::Registry;
use crate::queue::RedisBackend;
use crate::sqlite::SqliteBackend;
use crate::submit::{self, Submitter};
use anyhow::{Context, bail};
use std::sync::Arc;

/// The settings of the file (`--config`), overlaid with the global flags.
pub fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut s = Settings::load(cli.config.as_deref())?;
    if let Some(u) = cli.redis_url.as_ref().filter(|u| !u.is_empty()) {
        s.redis_url = Some(u.clone());
    }
    if let Some(p) = &cli.sqlite {
        s.sqlite = Some(p.clone());
    }
    if let Some(p) = &cli.prefix {
        s.prefix = p.clone();
    }
    if let Some(u) = &cli.database_url {
        s.database_url = Some(u.clone());
    }
    if let Some(r) = &cli.storage_root {
        s.chunking.storage_root = Some(r.clone());
    }
    if let Some(d) = &cli.model_dir {
        s.embedding.model_dir = Some(d.clone());
    }
    if let Some(d) = &cli.onnxruntime {
        s.embedding.onnxruntime = Some(d.clone());
    }
    if let Some(p) = &cli.schedules {
        s.schedules = Some(p.clone());
    }
    // Embedded: documents are read from the working folder unless told otherwise.
    if s.embedded().is_some() && s.chunking.storage_root.is_none() {
        s.chunking.storage_root = Some(std::env::current_dir()?);
    }
    Ok(s)
}

/// The configured backend, connected (the embedded SQLite file, or Redis).
pub(crate) async fn backend(s: &Settings) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(path) = s.embedded() {
        let b = SqliteBackend::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        return Ok(Arc::new(b));
    }
    let b = RedisBackend::connect(s.redis_url(), &s.prefix)
        .await
        .with_context(|| format!("connecting to {}", s.redis_url()))?;
    Ok(Arc::new(b))
}

/// Submit one job through the submit path of the configured backend. The job is checked before
/// anything connects: a bad job is refused even with the backend down, and nothing is sent.
pub(crate) async fn submit_one(
    s: &Settings,
    registry: &Registry,
    job: &Job,
) -> Result<Enqueued, anyhow::Error> {
    let options = s.queue_options();
    let checked = submit::check(registry, &options.limits, std::slice::from_ref(job))?;
    let submitter = Submitter::new(backend(s).await?, registry.clone(), options);
    Ok(submitter.enqueue(checked).await?.remove(0))
}

pub(crate) async fn queue_handle(s: &Settings, name: &str) -> anyhow::Result<Arc<dyn Queue>> {
    Ok(backend(s).await?.queue(name, s.queue_options()))
}

/// Every queue recorded under the prefix plus every queue a job kind runs on.
pub(crate) async fn all_queues(
    s: &Settings,
    registry: &Registry,
) -> anyhow::Result<Vec<Arc<dyn Queue>>> {
    let backend = backend(s).await?;
    Ok(backend.all_queues(registry, &s.queue_options()).await?)
}

/// A queue by name, which must be known (recorded under the prefix, run by a kind, or
/// configured): a typo must not pause a queue nobody reads.
pub(crate) async fn known_queue(
    s: &Settings,
    registry: &Registry,
    name: &str,
) -> anyhow::Result<Arc<dyn Queue>> {
    let all = all_queues(s, registry).await?;
    if let Some(q) = all.iter().find(|q| q.name() == name) {
        return Ok(q.clone());
    }
    if s.queues.iter().any(|q| q == name) {
        return queue_handle(s, name).await;
    }
    let mut known: Vec<&str> = all.iter().map(|q| q.name()).collect();
    known.extend(s.queues.iter().map(String::as_str));
    known.sort();
    known.dedup();
    bail!(
        "no queue {name:?} under prefix {:?}; known queues: {}",
        s.prefix,
        known.join(", ")
    )
}

/// The queue holding job `id`, searched across every known queue.
pub(crate) async fn find_job(
    s: &Settings,
    registry: &Registry,
    id: &str,
) -> anyhow::Result<Arc<dyn Queue>> {
    match backend(s)
        .await?
        .find_job(registry, &s.queue_options(), id)
        .await?
    {
        Some(q) => Ok(q),
        None => bail!("no job {id:?} in any queue under prefix {:?}", s.prefix),
    }
}
