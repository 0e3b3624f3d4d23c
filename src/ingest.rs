//! `chatter-worker ingest PATH...`: register files (recursing into folders) as documents and
//! enqueue a `chunk_document` job for each, with a progress bar; `--wait` follows them to their
//! final status.
//!
//! A document is keyed by (owner, sha256 of the file), and its job by an idempotency key made of
//! the document id and that hash: ingesting the same unchanged file again registers nothing new
//! and enqueues nothing new while the key lives.
use crate::backend::Queue;
use chatter_jobs::Job;
use chatter_jobs::chunk::source::resolve_under_root;
use chatter_jobs::kinds::documents::{ChunkDocumentArgs, chunk_job};
use chatter_jobs::store::{DocumentStatus, DocumentStore, NewDocument};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Store(#[from] chatter_jobs::store::StoreError),
    #[error(transparent)]
    Queue(#[from] crate::backend::QueueError),
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub paths: Vec<PathBuf>,
    pub owner: String,
    pub storage_root: PathBuf,
    pub wait: Option<Duration>,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ingested {
    pub document_id: String,
    pub path: String,
    pub new_document: bool,
    pub job_id: String,
    pub status: Option<DocumentStatus>,
    pub error: Option<String>,
}

/// Every regular file under the given paths, folders recursed, in path order.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, IngestError> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| file_err(&p, e))?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| file_err(&p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            stack.extend(children.into_iter().rev());
        } else if meta.is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

fn file_err(p: &Path, e: impl std::fmt::Display) -> IngestError {
    IngestError::File {
        path: p.display().to_string(),
        message: e.to_string(),
    }
}

/// (size, sha256 hex) of a file, streamed.
fn hash_file(p: &Path) -> Result<(i64, String), IngestError> {
    let mut f = std::fs::File::open(p).map_err(|e| file_err(p, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0i64;
    loop {
        let n = f.read(&mut buf).map_err(|e| file_err(p, e))?;
        if n == 0 {
            break;
        }
        size += n as i64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

fn bar(len: u64, show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

pub async fn ingest(
    o: &IngestOptions,
    store: &dyn DocumentStore,
    queue: &dyn Queue,
) -> Result<Vec<Ingested>, IngestError> {
    let root = o
        .storage_root
        .canonicalize()
        .map_err(|e| file_err(&o.storage_root, e))?;
    let files = files(&o.paths)?;
    let registering = bar(files.len() as u64, o.progress, "register");
    let mut out = Vec::with_capacity(files.len());
    let mut jobs = Vec::new();
    for f in &files {
        match register(f, &root, &o.owner, store).await {
            Ok((entry, job)) => {
                out.push(entry);
                jobs.push(job);
            }
            // One unreadable file or escaping link is reported, not a reason to stop the rest.
            Err(e @ IngestError::File { .. }) => out.push(Ingested {
                document_id: String::new(),
                path: f.display().to_string(),
                new_document: false,
                job_id: String::new(),
                status: None,
                error: Some(e.to_string()),
            }),
            Err(e) => return Err(e),
        }
        // Enqueue as we go: a stop half-way leaves few registered documents without a job, and
        // running ingest again enqueues those (the idempotency key skips the rest).
        if jobs.len() == 500 {
            enqueue(queue, &mut jobs, &mut out).await?;
        }
        registering.inc(1);
    }
    enqueue(queue, &mut jobs, &mut out).await?;
    registering.finish();
    if let Some(limit) = o.wait {
        wait(o, store, queue, &mut out, limit).await?;
    }
    Ok(out)
}

/// Register one file as a document and build its job.
async fn register(
    f: &Path,
    root: &Path,
    owner: &str,
    store: &dyn DocumentStore,
) -> Result<(Ingested, Job), IngestError> {
    let real = resolve_under_root(root, f).map_err(|e| file_err(f, e))?;
    let rel = real
        .strip_prefix(root)
        .unwrap_or(&real)
        .to_string_lossy()
        .into_owned();
    let (size, hash) = hash_file(&real)?;
    let mut doc = NewDocument::new(owner, &rel);
    doc.file_size = Some(size);
    doc.file_hash = Some(hash.clone());
    let (id, created) = store.register_document(&doc).await?;
    let args = ChunkDocumentArgs {
        document_id: id.clone(),
        max_tokens: None,
        overlap_tokens: None,
    };
    let job = chunk_job(&args)
        .name(format!("chunk {rel}"))
        .owner(owner.to_string())
        .idempotency_key(format!("chunk:{id}:{hash}"))
        .build();
    let entry = Ingested {
        document_id: id,
        path: rel,
        new_document: created,
        job_id: job.id.clone(),
        status: None,
        error: None,
    };
    Ok((entry, job))
}

/// Enqueue the gathered jobs; each entry takes its job's id (the first job's, for a repeat).
async fn enqueue(
    queue: &dyn Queue,
    jobs: &mut Vec<Job>,
    out: &mut [Ingested],
) -> Result<(), IngestError> {
    if jobs.is_empty() {
        return Ok(());
    }
    for (job, e) in jobs.iter().zip(queue.enqueue_batch(jobs).await?) {
        if e.id != job.id
            && let Some(entry) = out.iter_mut().find(|i| i.job_id == job.id)
        {
            entry.job_id = e.id;
        }
    }
    jobs.clear();
    Ok(())
}

/// Poll until every document is final (processed after its last embedding batch, or failed),
/// its chunking job ended without making it so (dead or cancelled), or `limit` passes; then
/// record the documents' statuses.
async fn wait(
    o: &IngestOptions,
    store: &dyn DocumentStore,
    queue: &dyn Queue,
    out: &mut [Ingested],
    limit: Duration,
) -> Result<(), IngestError> {
    let processing = bar(out.len() as u64, o.progress, "process");
    let started = Instant::now();
    let job_of: HashMap<String, String> = out
        .iter()
        .map(|i| (i.document_id.clone(), i.job_id.clone()))
        .collect();
    let mut pending: Vec<String> = out
        .iter()
        .filter(|i| !i.job_id.is_empty())
        .map(|i| i.document_id.clone())
        .collect();
    while !pending.is_empty() && started.elapsed() < limit {
        let mut still = Vec::with_capacity(pending.len());
        for (id, status, _) in store.statuses(&pending).await? {
            if status.is_final() {
                continue;
            }
            let job = queue.field(&job_of[&id], "status").await?;
            // A job that ended badly leaves the document as it is; a record already trimmed by
            // retention has ended too.
            if matches!(
                job.as_deref(),
                Some("pending" | "running" | "retrying" | "completed")
            ) {
                still.push(id);
            }
        }
        pending = still;
        processing.set_position((out.len() - pending.len()) as u64);
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    processing.finish();
    let ids: Vec<String> = out.iter().map(|i| i.document_id.clone()).collect();
    for (id, status, error) in store.statuses(&ids).await? {
        for entry in out.iter_mut().filter(|e| e.document_id == id) {
            entry.status = Some(status);
            entry.error = error.clone();
        }
    }
    Ok(())
}

/// Print what happened to each file (JSON or a line each); returns how many failed or were
/// skipped.
pub fn report(done: &[Ingested], json: bool) -> serde_json::Result<usize> {
    if json {
        println!("{}", serde_json::to_string_pretty(done)?);
    } else {
        for d in done {
            let status = match d.status {
                Some(st) => st.as_str(),
                None if d.job_id.is_empty() => "skipped",
                None => "enqueued",
            };
            let error = d.error.as_deref().unwrap_or_default();
            println!("{}  {:<10} {}  {error}", d.document_id, status, d.path);
        }
    }
    Ok(done
        .iter()
        .filter(|d| d.status == Some(DocumentStatus::Failed) || d.job_id.is_empty())
        .count())
}
