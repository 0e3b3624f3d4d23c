//! The demo's ingest, followed to its end with two progress bars: documents chunked, and chunks
//! embedded (a document's chunks count as embedded once it is `processed`, which it becomes
//! after its last embedding batch). Ends when every document is final, its chunking job ended
//! without making it so (dead or cancelled), or the time limit passes.
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

/// Follow `docs` (as `ingest` returned them) until each is final or given up on.
pub async fn follow(
    docs: &[Ingested],
    store: &dyn DocumentStore,
    queue: &dyn Queue,
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
            let job = queue.field(&d.job_id, "status").await?;
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
        embedded.set_position(
            out.iter()
                .filter(|f| f.status == Some(DocumentStatus::Processed))
                .map(|f| f.chunks)
                .sum(),
        );
        if pending == 0 || started.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chunked.finish();
    embedded.finish();
    Ok(out)
}
