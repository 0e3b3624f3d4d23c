//! The `chunk_document` handler: load a document (file under the storage root, or URL through
//! the SSRF guard), extract its text, split it token-aware, replace its chunks in one
//! transaction, then fan out `embed_chunks` batches (or mark it processed when no embedding
//! step follows).
//!
//! Chunk ids are derived from the job id and the chunk index, so a retried or rescued run of the
//! same job writes the same ids and enqueues the same batches under the same idempotency keys:
//! nothing is doubled, whichever attempt's writes land last.
pub mod extract;
pub mod guard;
pub mod office;
pub mod source;
pub mod split;

use crate::kinds::documents::{
    CHUNK_DOCUMENT, ChunkDocumentArgs, EmbedChunksArgs, check_chunk, embed_job,
};
use crate::outbox::Outbox;
use crate::registry::{Registry, queues};
use crate::store::documents::Extracted;
use crate::store::{Document, NewChunk, Store, StoreError};
use crate::{ErrorExt, Job, JobContext, JobError};
use extract::{DocType, ExtractLimits};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use source::SourceConfig;
use split::{SplitParams, Tokenizer};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the chunking handler (`[chunking]` in the worker's configuration).
#[derive(Debug, Clone)]
pub struct ChunkSettings {
    pub source: SourceConfig,
    pub limits: ExtractLimits,
    /// Time one extraction (and split) may take; past it the document fails.
    pub extract_timeout: Duration,
    /// Chunks one document may have (default 10,000).
    pub max_chunks: usize,
    /// Chunk ids per `embed_chunks` job.
    pub embed_batch: usize,
    /// Enqueue `embed_chunks` batches; when false the document is `processed` once chunked.
    pub embed: bool,
    /// The target embedding model's tokenizer and input limit (tokens per chunk at most).
    pub tokenizer: Tokenizer,
    pub model_max_tokens: usize,
    pub embedding_model: String,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self {
            source: SourceConfig::default(),
            limits: ExtractLimits::default(),
            extract_timeout: Duration::from_secs(120),
            max_chunks: 10_000,
            embed_batch: 100,
            embed: false,
            tokenizer: Tokenizer::cl100k(),
            model_max_tokens: 8191,
            embedding_model: "text-embedding-3-large".into(),
        }
    }
}

/// The chunking handler with what it needs: settings, the store, an outbox, an HTTP client.
pub struct Chunker {
    settings: ChunkSettings,
    store: Store,
    outbox: Arc<dyn Outbox>,
    http: reqwest::Client,
}

impl Chunker {
    pub fn new(
        settings: ChunkSettings,
        store: Store,
        outbox: Arc<dyn Outbox>,
    ) -> Result<Self, String> {
        let http = source::http_client(&settings.source)?;
        Ok(Self {
            settings,
            store,
            outbox,
            http,
        })
    }

    /// Register `chunk_document` with this handler.
    pub fn install(self: Arc<Self>, registry: &mut Registry) {
        registry.register_checked(
            CHUNK_DOCUMENT,
            queues::CHUNKING,
            move |job, ctx| {
                let me = self.clone();
                async move { me.run(job, ctx).await }
            },
            check_chunk,
        );
    }

    pub async fn run(&self, job: Job, ctx: JobContext) -> Result<Value, JobError> {
        let args: ChunkDocumentArgs = job.kwargs_as().fatal()?;
        let doc = match self.store.start_processing(&args.document_id).await {
            Ok(Some(doc)) => doc,
            Ok(None) => {
                return Ok(json!({"document_id": args.document_id, "skipped": "archived"}));
            }
            Err(e @ StoreError::NoDocument(_)) => return Err(JobError::Fatal(e.to_string())),
            Err(e) => return Err(JobError::Retry(e.to_string())),
        };
        self.event("document.processing_started", &doc, &job, json!({}))
            .await;
        let result = self.process(&doc, &args, &job, &ctx).await;
        let last_attempt = ctx.attempt >= job.max_attempts();
        let failure = match &result {
            Err(JobError::Fatal(m)) => Some(m.clone()),
            Err(JobError::Retry(m)) if last_attempt => Some(format!("{m} (attempts spent)")),
            Err(JobError::Cancelled) => Some("processing was cancelled".into()),
            _ => None,
        };
        if let Some(message) = failure {
            let message = format!("{}: {message}", doc.filename);
            // Losing this write leaves the document `processing`; the job's own record still
            // says why, so a retry is not owed here.
            if let Err(e) = self.store.fail_document(&doc.id, &message).await {
                tracing::warn!(document = %doc.id, error = %e, "could not mark the document failed");
            }
            self.event(
                "document.processing_failed",
                &doc,
                &job,
                json!({"status": "failed", "error": message}),
            )
            .await;
            if let Err(JobError::Fatal(_)) = result {
                return Err(JobError::Fatal(message));
            }
        }
        result
    }

    async fn process(
        &self,
        doc: &Document,
        args: &ChunkDocumentArgs,
        job: &Job,
        ctx: &JobContext,
    ) -> Result<Value, JobError> {
        let s = &self.settings;
        self.step(ctx, doc, job, 5, "loading").await;
        let loaded = tokio::select! {
            r = source::load(&s.source, &self.http, &doc.file_path) => r?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        self.step(ctx, doc, job, 20, "extracting text").await;
        let max_tokens = args
            .max_tokens
            .unwrap_or((doc.chunk_size.max(4) / 4) as usize)
            .min(s.model_max_tokens);
        let params = SplitParams {
            max_tokens,
            overlap_tokens: args
                .overlap_tokens
                .unwrap_or((doc.chunk_overlap.max(0) / 4) as usize),
            markdown: false,
            max_chunks: s.max_chunks,
        };
        let (limits, tokenizer, job_id) = (s.limits.clone(), s.tokenizer.clone(), job.id.clone());
        let work =
            ctx.blocking(move || extract_and_split(loaded, &limits, &tokenizer, params, &job_id));
        let (extracted, chunks) = tokio::select! {
            r = tokio::time::timeout(s.extract_timeout, work) => match r {
                Ok(r) => r??,
                Err(_) => return Err(JobError::Fatal(format!(
                    "extraction took longer than the limit of {} s",
                    s.extract_timeout.as_secs_f64()
                ))),
            },
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        self.step(ctx, doc, job, 70, "storing chunks").await;
        self.store
            .replace_chunks(&doc.id, &extracted, &chunks, !s.embed)
            .await
            .retryable()?;
        let batches = if s.embed {
            self.step(ctx, doc, job, 90, "enqueueing embedding").await;
            self.fan_out(doc, job, &chunks).await?
        } else {
            self.event(
                "document.processing_completed",
                doc,
                job,
                json!({"status": "processed", "chunk_count": chunks.len()}),
            )
            .await;
            0
        };
        ctx.progress(100, "done");
        Ok(json!({
            "document_id": doc.id,
            "document_type": extracted.document_type,
            "chunk_count": chunks.len(),
            "token_count": chunks.iter().map(|c| c.token_count as u64).sum::<u64>(),
            "max_tokens": max_tokens,
            "embed_jobs": batches,
        }))
    }

    /// One `embed_chunks` job per batch, keyed by this job's id and the batch number.
    async fn fan_out(
        &self,
        doc: &Document,
        job: &Job,
        chunks: &[NewChunk],
    ) -> Result<usize, JobError> {
        let jobs: Vec<Job> = chunks
            .chunks(self.settings.embed_batch.max(1))
            .enumerate()
            .map(|(i, batch)| {
                let args = EmbedChunksArgs {
                    document_id: doc.id.clone(),
                    chunk_ids: batch.iter().map(|c| c.id.clone()).collect(),
                };
                let mut b = embed_job(&args)
                    .priority(job.priority)
                    .idempotency_key(format!("embed:{}:{i}", job.id));
                if let Some(owner) = &job.created_by_user_id {
                    b = b.owner(owner.clone());
                }
                b.build()
            })
            .collect();
        let n = jobs.len();
        self.outbox.enqueue(jobs).await.map_err(JobError::Retry)?;
        Ok(n)
    }

    async fn step(&self, ctx: &JobContext, doc: &Document, job: &Job, pct: u8, what: &str) {
        ctx.progress(pct, what);
        self.event(
            "document.processing_progress",
            doc,
            job,
            json!({"progress": pct, "message": what}),
        )
        .await;
    }

    /// Publish a document event. Best effort: an event lost to a Redis blip must not fail the job.
    async fn event(&self, kind: &str, doc: &Document, job: &Job, extra: Value) {
        let mut e = json!({
            "type": kind,
            "document_id": doc.id,
            "owner_id": doc.owner_id,
            "job_id": job.id,
        });
        if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
            e.extend(extra);
        }
        if let Err(err) = self.outbox.publish(e).await {
            tracing::warn!(document = %doc.id, error = %err, "event not published");
        }
    }
}

/// Detect, extract and split (CPU work, run on the blocking pool).
fn extract_and_split(
    loaded: source::Loaded,
    limits: &ExtractLimits,
    tokenizer: &Tokenizer,
    mut params: SplitParams,
    job_id: &str,
) -> Result<(Extracted, Vec<NewChunk>), JobError> {
    let t = extract::detect(&loaded.bytes, &loaded.name).fatal()?;
    let text = extract::extract(&loaded.bytes, t, limits).fatal()?;
    params.markdown = t == DocType::Markdown;
    let pieces = split::split(&text, tokenizer, params).fatal()?;
    let chunks = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| NewChunk {
            id: chunk_id(job_id, i),
            chunk_index: i as i32,
            content: p.content.to_string(),
            content_hash: hex::encode(Sha256::digest(p.content.as_bytes())),
            token_count: p.token_count as i32,
            start_char: p.start_char as i32,
            end_char: p.end_char as i32,
        })
        .collect();
    let extracted = Extracted {
        file_size: loaded.bytes.len() as i64,
        file_hash: hex::encode(Sha256::digest(&loaded.bytes)),
        document_type: t.as_str().into(),
        mime_type: t.mime().into(),
        text,
    };
    Ok((extracted, chunks))
}

/// A ULID fixed by (job id, chunk index): the job's timestamp, and 80 bits of their hash.
pub fn chunk_id(job_id: &str, index: usize) -> String {
    let ts = ulid::Ulid::from_string(job_id)
        .map(|u| u.timestamp_ms())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(job_id.as_bytes());
    h.update((index as u64).to_le_bytes());
    let d = h.finalize();
    let mut r = [0u8; 16];
    r[6..].copy_from_slice(&d[..10]);
    ulid::Ulid::from_parts(ts, u128::from_be_bytes(r)).to_string()
}
