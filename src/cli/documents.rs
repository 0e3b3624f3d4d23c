//! The commands on documents and their store: `migrate` (create the absent tables), `ingest`
//! (register files as documents and enqueue their chunking; exit 2 when any failed) and `search`
//! (top-k chunks for a query, through the configured embedding provider).
use super::context::{backend, queue_handle};
use crate::cli::{IngestArgs, SearchArgs};
use crate::config::Settings;
use crate::handlers;
use crate::ingest::{self, IngestOptions};
use crate::jobs::registry::queues;
use anyhow::Context;

/// `migrate`.
pub async fn migrate(mut s: Settings) -> anyhow::Result<()> {
    s.migrate = true;
    handlers::store(&s).await?;
    println!("migrated");
    Ok(())
}

/// `ingest PATHS...`.
pub async fn ingest(s: &Settings, a: IngestArgs, json: bool) -> anyhow::Result<()> {
    let store = handlers::store(s).await?;
    let queue = queue_handle(s, queues::CHUNKING).await?;
    let storage_root = s.chunking.storage_root.clone().context(
        "ingest needs the storage root the workers read from: --storage-root or CW_STORAGE_ROOT",
    )?;
    let options = IngestOptions {
        paths: a.paths,
        owner: a.owner,
        storage_root,
        wait: a.wait,
        progress: !json,
    };
    let done = ingest::ingest(&options, &*store.documents(), queue.as_ref()).await?;
    let failed = ingest::report(&done, json)?;
    if failed > 0 {
        eprintln!("{failed} of {} files failed or were skipped", done.len());
        std::process::exit(2);
    }
    Ok(())
}

/// `search QUERY`.
pub async fn search(s: &Settings, a: SearchArgs, json: bool) -> anyhow::Result<()> {
    let mut s = s.clone();
    super::model::embedded_default(&mut s).await?;
    let s = &s;
    let store = handlers::store(s).await?;
    let embedder = handlers::embedder(s, &store, backend(s).await?)
        .await?
        .context("search needs an embedding provider: [embedding] in the config, or --model-dir")?;
    if a.k == 0 {
        anyhow::bail!("--k must be at least 1");
    }
    let docs = (!a.documents.is_empty()).then_some(a.documents.as_slice());
    let hits = embedder
        .search(&a.query, a.k, a.owner.as_deref(), docs)
        .await
        .map_err(|e| anyhow::anyhow!("search: {e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else {
        for (i, h) in hits.iter().enumerate() {
            let text: String = h.content.chars().take(160).collect();
            println!(
                "{:>2}. {:.4}  {} #{}  {}",
                i + 1,
                h.score,
                h.document_id,
                h.chunk_index,
                text.replace('\n', " ")
            );
        }
    }
    Ok(())
}
