//! The `chunk_document` handler: load a document (file under the storage root, or URL through
//! the SSRF guard), extract its text, split it token-aware, replace its chunks in one
//! transaction, then fan out `embed_chunks` batches (or mark it processed when no embedding
//! step follows).
//!
//! Chunk ids are derived from the job id and the chunk index, so a retried or rescued run of the
//! same job writes the same ids and enqueues the same batches under the same idempotency keys:
//! nothing is doubled. Every write is fenced by the run (job id and claim) that last started on
//! the document, so a run that lost its lease or was superseded by a newer job changes nothing.
pub mod extract;
pub mod extractor;
pub mod guard;
pub mod office;
pub mod source;
pub mod split;
pub mod tokenizer;

use crate::kinds::documents::{
    CHUNK_DOCUMENT, ChunkDocumentArgs, EmbedChunksArgs, check_chunk, embed_job,
};
use crate::outbox::{Outbox, publish_document_event};
use crate::registry::{Registry, queues};
use crate::store::documents::Extracted;
use crate::store::{Document, DocumentStore, NewChunk, Run, StoreError};
use crate::{ErrorExt, Job, JobContext, JobError};
use extract::{DocType, ExtractLimits};
use extractor::Extractor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use source::SourceConfig;
use split::SplitParams;
use std::sync::Arc;
use std::time::Duration;
use tokenizer::Tokenizer;

/// Chunks one document may have, by default.
pub const DEFAULT_MAX_CHUNKS: usize = 10_000;
/// Chunk ids per `embed_chunks` job, by default (Chatter embeds in batches of 100).
pub const DEFAULT_EMBED_BATCH: usize = 100;
/// Time one extraction may take, by default.
pub const DEFAULT_EXTRACT_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of the chunking handler (`[chunking]` in the worker's configuration).
#[derive(Debug, Clone)]
pub struct ChunkSettings {
    pub source: SourceConfig,
    pub limits: ExtractLimits,
    /// Where extraction runs (a child process in production).
    pub extractor: Extractor,
    /// Time one extraction may take; past it the document fails (and its child is killed).
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
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self {
            source: SourceConfig::default(),
            limits: ExtractLimits::default(),
            extractor: Extractor::InProcess,
            extract_timeout: DEFAULT_EXTRACT_TIMEOUT,
            max_chunks: DEFAULT_MAX_CHUNKS,
            embed_batch: DEFAULT_EMBED_BATCH,
            embed: false,
            tokenizer: Tokenizer::cl100k(),
            model_max_tokens: 8191,
        }
    }
}

/// The chunking handler with what it needs: settings, the store, an outbox, an HTTP client.
pub struct Chunker {
    settings: ChunkSettings,
    store: Arc<dyn DocumentStore>,
    outbox: Arc<dyn Outbox>,
    http: reqwest::Client,
}

impl Chunker {
    pub fn new(
        settings: ChunkSettings,
        store: impl DocumentStore + 'static,
        outbox: Arc<dyn Outbox>,
    ) -> Result<Self, String> {
        let http = source::http_client(&settings.source)?;
        Ok(Self {
            settings,
            store: Arc::new(store),
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
        let run = Run {
            job_id: job.id.clone(),
            fence: ctx.fence as i64,
        };
        let doc = match self.store.start_processing(&args.document_id, &run).await {
            Ok(Some(doc)) => doc,
            Ok(None) => {
                return Ok(json!({"document_id": args.document_id, "skipped": "archived"}));
            }
            Err(e @ StoreError::NoDocument(_)) => return Err(JobError::Fatal(e.to_string())),
            Err(e) => return Err(JobError::Retry(e.to_string())),
        };
        self.event("document.processing_started", &doc, &job, json!({}))
            .await;
        let result = self.process(&doc, &run, &args, &job, &ctx).await;
        let last_attempt = ctx.attempt >= job.max_attempts();
        // A cancelled run leaves the document to the run that follows (a retry, a rescue
        // elsewhere, the next job): its status says `processing` until then.
        let failure = result
            .as_ref()
            .err()
            .and_then(|e| e.final_reason(last_attempt));
        if let Some(message) = failure {
            let message = format!("{}: {message}", doc.filename);
            match self.store.fail_document(&doc.id, &run, &message).await {
                Ok(()) => {
                    self.event(
                        "document.processing_failed",
                        &doc,
                        &job,
                        json!({"status": "failed", "error": message}),
                    )
                    .await
                }
                // Another run owns the document now: its outcome stands.
                Err(e @ StoreError::Superseded { .. }) => {
                    tracing::info!(document = %doc.id, "{e}: this run's failure is not recorded");
                }
                // Losing this write leaves the document `processing`; the job's own record
                // still says why, so a retry is not owed here.
                Err(e) => {
                    tracing::warn!(document = %doc.id, error = %e, "could not mark the document failed")
                }
            }
            if let Err(JobError::Fatal(_)) = result {
                return Err(JobError::Fatal(message));
            }
        }
        result
    }

    async fn process(
        &self,
        doc: &Document,
        run: &Run,
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
        let (loaded, t, file_hash) = ctx
            .blocking(move || {
                let t = extract::detect(&loaded.bytes, &loaded.name);
                let hash = hex::encode(Sha256::digest(&loaded.bytes));
                (loaded, t, hash)
            })
            .await?;
        let t = t.fatal()?;
        let file_size = loaded.bytes.len() as i64;
        let text = s
            .extractor
            .extract(loaded.bytes, t, &s.limits, s.extract_timeout, &ctx.cancel)
            .await?;
        self.step(ctx, doc, job, 50, "splitting").await;
        let max_tokens = args
            .max_tokens
            .unwrap_or((doc.chunk_size.max(4) / 4) as usize)
            .min(s.model_max_tokens);
        let params = SplitParams {
            max_tokens,
            overlap_tokens: args
                .overlap_tokens
                .unwrap_or((doc.chunk_overlap.max(0) / 4) as usize),
            markdown: t == DocType::Markdown,
            max_chunks: s.max_chunks,
        };
        let (tokenizer, job_id) = (s.tokenizer.clone(), job.id.clone());
        let split = ctx.blocking(move || {
            // A panic here is a bug met on this input, and would meet it again: final.
            let chunks =
                std::panic::catch_unwind(|| split_chunks(&text, &tokenizer, params, &job_id))
                    .unwrap_or_else(|_| {
                        Err(JobError::Fatal("the splitter failed on this text".into()))
                    });
            (text, chunks)
        });
        let (text, chunks) = tokio::select! {
            r = split => r?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let chunks = chunks?;
        let extracted = Extracted {
            file_size,
            file_hash,
            document_type: t.as_str().into(),
            mime_type: t.mime().into(),
            text,
        };
        self.step(ctx, doc, job, 70, "storing chunks").await;
        match self
            .store
            .replace_chunks(&doc.id, run, &extracted, &chunks, !s.embed)
            .await
        {
            Ok(()) => {}
            // Another run owns the document now: this one ends without writing.
            Err(e @ StoreError::Superseded { .. }) => {
                return Ok(json!({"document_id": doc.id, "superseded": e.to_string()}));
            }
            Err(e) => return Err(JobError::Retry(e.to_string())),
        }
        let batches = if s.embed {
            self.step(ctx, doc, job, 90, "enqueueing embedding").await;
            self.fan_out(doc, run, job, &chunks).await?
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
        run: &Run,
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
                    run_fence: Some(run.fence),
                };
                // The key names the run's claim and the batch's ids: a retried or rescued run
                // rewrote the chunks (and so dropped their vectors), and its batches must run
                // again; its cached texts cost no provider call.
                let ids = Sha256::digest(args.chunk_ids.join(",").as_bytes());
                let key = format!(
                    "embed:{}:{}:{i}:{}",
                    job.id,
                    run.fence,
                    &hex::encode(ids)[..16]
                );
                let mut b = embed_job(&args).priority(job.priority).idempotency_key(key);
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

    /// Publish a document event (best effort).
    async fn event(&self, kind: &str, doc: &Document, job: &Job, extra: Value) {
        publish_document_event(
            self.outbox.as_ref(),
            kind,
            &doc.id,
            Some(&doc.owner_id),
            &job.id,
            extra,
        )
        .await
    }
}

/// Split the text and give each chunk its id, hash and count (CPU work, on the blocking pool).
fn split_chunks(
    text: &str,
    tokenizer: &Tokenizer,
    params: SplitParams,
    job_id: &str,
) -> Result<Vec<NewChunk>, JobError> {
    let pieces = split::split(text, tokenizer, params).fatal()?;
    Ok(pieces
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
        .collect())
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
