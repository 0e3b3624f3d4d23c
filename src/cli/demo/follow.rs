//! The demo's ingest, followed to its end with two progress bars: documents chunked, and chunks
//! embedded (the chunk ids of the owner's `embed_chunks` jobs completed since the ingest began;
//! at least the chunks of every `processed` document). Ends when every document is final, its
//! chunking job ended without making it so (dead or cancelled), or the time limit passes.
use crate::backend::Queue;
use crate::ingest::Ingested;
use chatter_jobs::store::{DocumentStatus, DocumentStore};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Where each document ended.
pub struct Followed {
    pub path: String,
    pub status: Option<DocumentStatus>,
    pub chunks: u64,
    pub error: Option<String>,
    /// Final already when following began (ingested by an earlier run).
    pub done_before: bool,
}

fn bar(progress: &MultiProgress, len: u64, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} {elapsed_precise}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let b = progress.add(ProgressBar::new(len).with_style(style));
    b.set_message(what.to_string());
    b
}

/// The queues the documents' jobs run on, and whose jobs they are.
pub struct Queues<'a> {
    pub chunking: &'a dyn Queue,
    pub embedding: &'a dyn Queue,
    pub owner: &'a str,
}

/// Chunks in `owner`'s `embed_chunks` jobs created since `since_ms` that completed.
async fn chunks_embedded(q: &Queues<'_>, since_ms: u64) -> anyhow::Result<u64> {
    // The index's times are SQLite integers: i64.
    let range = (since_ms, i64::MAX as u64);
    let ids: Vec<String> = q
        .embedding
        .index_page(q.owner, range, 0, 100_000, false)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let records = q.embedding.show_many(&ids).await?;
    Ok(records
        .iter()
        .flatten()
        .filter(|r| r.status == "completed")
        .filter_map(|r| {
            r.job
                .as_ref()?
                .kwargs
                .get("chunk_ids")?
                .as_array()
                .map(Vec::len)
        })
        .map(|n| n as u64)
        .sum())
}

/// Follow `docs` (as `ingest` returned them, enqueued at `since_ms` or after) until each is
/// final or given up on.
pub async fn follow(
    docs: &[Ingested],
    store: &dyn DocumentStore,
    queues: Queues<'_>,
    since_ms: u64,
    progress: &MultiProgress,
    limit: Duration,
) -> anyhow::Result<Vec<Followed>> {
    let chunked = bar(progress, docs.len() as u64, "docs chunked");
    let embedded = bar(progress, 0, "chunks embedded");
    let started = Instant::now();
    let mut out: Vec<Followed> = docs
        .iter()
        .map(|d| Followed {
            path: d.path.clone(),
            status: None,
            chunks: 0,
            error: d.error.clone(),
            done_before: false,
        })
        .collect();
    let mut first = true;
    loop {
        let mut pending = 0;
        for (d, f) in docs.iter().zip(out.iter_mut()) {
            if d.job_id.is_empty() || f.status.is_some_and(DocumentStatus::is_final) {
                continue;
            }
            let Some(doc) = store.document(&d.document_id).await? else {
                f.error = Some(format!("document {} vanished", d.document_id));
                continue;
            };
            f.status = Some(doc.status);
            f.chunks = u64::try_from(doc.chunk_count).unwrap_or(0);
            f.error = doc.processing_error;
            if doc.status.is_final() {
                f.done_before = first;
                continue;
            }
            // A chunking job that ended badly leaves the document as it is; so does one whose
            // record retention already trimmed.
            let job = queues.chunking.field(&d.job_id, "status").await?;
            if matches!(
                job.as_deref(),
                Some("pending" | "running" | "retrying" | "completed")
            ) {
                pending += 1;
            } else {
                f.error.get_or_insert_with(|| {
                    format!(
                        "its chunking job {} ended {}",
                        d.job_id,
                        job.as_deref().unwrap_or("and is gone")
                    )
                });
            }
        }
        first = false;
        let final_or_chunked = out
            .iter()
            .filter(|f| f.chunks > 0 || f.status.is_some_and(DocumentStatus::is_final))
            .count();
        chunked.set_position(final_or_chunked as u64);
        embedded.set_length(out.iter().map(|f| f.chunks).sum());
        let processed: u64 = out
            .iter()
            .filter(|f| f.status == Some(DocumentStatus::Processed))
            .map(|f| f.chunks)
            .sum();
        let batches = chunks_embedded(&queues, since_ms).await?;
        embedded.set_position(processed.max(batches).min(embedded.length().unwrap_or(0)));
        if pending == 0 || started.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chunked.finish();
    embedded.finish();
    Ok(out)
}
