//! The `embed_chunks` handler: embed one batch of a document's chunks and store their vectors;
//! the batch that lands last marks the document `processed`. Also the `search` every later
//! consumer (workflow retrieval, `chatter-worker search`) uses.
//!
//! A provider call is never wasted: texts are looked up in the space's embedding cache first
//! (by content hash, so identical text is embedded once across documents and re-runs), and
//! every answer is cached the moment it arrives, before the batch's own write. Calls go through
//! the provider account's rate limit, shared by every process through Redis, and are retried in
//! place after the provider's `Retry-After` or a jittered exponential backoff.
pub mod limiter;
pub mod local;
pub mod openai;
pub mod provider;

use crate::chunk::chunk_id;
use crate::kinds::documents::{EMBED_CHUNKS, EmbedChunksArgs, check_embed};
use crate::outbox::{Outbox, publish_document_event};
use crate::registry::{Registry, queues};
use crate::store::vectors::{BatchWrite, ChunkText, Hit, SpaceTables};
use crate::store::{Run, StoreError, VectorStore};
use crate::{ErrorExt, Job, JobContext, JobError};
use backon::BackoffBuilder;
use limiter::RateLimiter;
use provider::{Provider, ProviderError, plan_requests};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Settings of the embedding handler (`[embedding]` in the worker's configuration).
#[derive(Debug, Clone)]
pub struct EmbedSettings {
    /// Retries of one provider request inside a run before the job itself is retried.
    pub max_retries: usize,
    /// The first and longest backoff between those retries.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited in place; a longer one snoozes the job for that long.
    pub max_retry_after: Duration,
    /// HNSW candidates searched (`hnsw.ef_search`): recall against speed.
    pub ef_search: usize,
}

impl Default for EmbedSettings {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            ef_search: 100,
        }
    }
}

pub struct Embedder {
    provider: Arc<dyn Provider>,
    tables: SpaceTables,
    store: Arc<dyn VectorStore>,
    outbox: Arc<dyn Outbox>,
    limiter: Arc<dyn RateLimiter>,
    settings: EmbedSettings,
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The check that a batch belongs to the run owning its document: its chunks were written by
/// that run's job (chunk ids derive from job id and index) and, when the batch names the run's
/// claim, by that very attempt (a retried run rewrites the same ids).
fn owned_by(fence: Option<i64>) -> impl Fn(&Run, &ChunkText) -> bool + Send + Sync {
    move |run, c| {
        chunk_id(&run.job_id, c.chunk_index.max(0) as usize) == c.id
            && fence.is_none_or(|f| f == run.fence)
    }
}

impl Embedder {
    /// Build the handler, creating the provider's vector space tables when absent.
    pub async fn new(
        provider: Arc<dyn Provider>,
        store: impl VectorStore + 'static,
        outbox: Arc<dyn Outbox>,
        limiter: Arc<dyn RateLimiter>,
        settings: EmbedSettings,
    ) -> Result<Self, StoreError> {
        let tables = store.ensure_space(provider.space()).await?;
        Ok(Self {
            provider,
            tables,
            store: Arc::new(store),
            outbox,
            limiter,
            settings,
        })
    }

    pub fn tables(&self) -> &SpaceTables {
        &self.tables
    }

    /// Register `embed_chunks` with this handler.
    pub fn install(self: Arc<Self>, registry: &mut Registry) {
        registry.register_checked(
            EMBED_CHUNKS,
            queues::EMBEDDING,
            move |job, ctx| {
                let me = self.clone();
                async move { me.run(job, ctx).await }
            },
            check_embed,
        );
    }

    pub async fn run(&self, job: Job, ctx: JobContext) -> Result<Value, JobError> {
        let args: EmbedChunksArgs = job.kwargs_as().fatal()?;
        let chunks = self
            .store
            .chunk_texts(&self.tables, &args.document_id, &args.chunk_ids)
            .await
            .retryable()?;
        let Some(first) = chunks.first().cloned() else {
            // Replaced by a newer run, or the document is gone: nothing of this batch is left.
            return Ok(json!({"document_id": args.document_id, "skipped": "no such chunks"}));
        };
        let result = self.embed_batch(&args, chunks, &job, &ctx).await;
        let last_attempt = ctx.attempt >= job.max_attempts();
        let failure = result
            .as_ref()
            .err()
            .and_then(|e| e.final_reason(last_attempt));
        if let Some(message) = failure {
            let message = format!("embedding with {}: {message}", self.tables.space.model);
            match self
                .store
                .fail_embedding(
                    &args.document_id,
                    &first,
                    &owned_by(args.run_fence),
                    &message,
                )
                .await
            {
                Ok(true) => {
                    self.event(
                        &args.document_id,
                        &job,
                        "document.processing_failed",
                        json!({"status": "failed", "error": message}),
                    )
                    .await
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(document = %args.document_id, error = %e, "could not mark the document failed")
                }
            }
        }
        result
    }

    async fn embed_batch(
        &self,
        args: &EmbedChunksArgs,
        chunks: Vec<ChunkText>,
        job: &Job,
        ctx: &JobContext,
    ) -> Result<Value, JobError> {
        let member = chunks[0].clone();
        let (done, todo): (Vec<ChunkText>, Vec<ChunkText>) =
            chunks.into_iter().partition(|c| c.has_vector);
        let texts: Vec<String> = todo.iter().map(|c| c.content.clone()).collect();
        let started = Instant::now();
        let vectors = self.embed_texts(&texts, &ctx.cancel).await?;
        ctx.progress(80, "storing vectors");
        let pairs: Vec<(ChunkText, Vec<f32>)> = todo.into_iter().zip(vectors).collect();
        let written = self
            .store
            .write_batch(
                &self.tables,
                &args.document_id,
                &member,
                &pairs,
                &owned_by(args.run_fence),
            )
            .await
            .retryable()?;
        let (rows, completed) = match written {
            BatchWrite::Written { rows, completed } => (rows, completed),
            BatchWrite::Stale(why) => {
                return Ok(json!({"document_id": args.document_id, "skipped": why}));
            }
        };
        if let Some(count) = completed {
            self.event(
                &args.document_id,
                job,
                "document.processing_completed",
                json!({"status": "processed", "chunk_count": count}),
            )
            .await;
        }
        ctx.progress(100, "done");
        Ok(json!({
            "document_id": args.document_id,
            "model": self.tables.space.model,
            "dimensions": self.tables.space.dimensions,
            "embedded": rows,
            "already_embedded": done.len(),
            "document_completed": completed.is_some(),
            "seconds": started.elapsed().as_secs_f64(),
        }))
    }

    /// One unit vector per text: from the cache where it has the text, from the provider (and
    /// then into the cache) where not. Identical texts are embedded once.
    pub async fn embed_texts(
        &self,
        texts: &[String],
        cancel: &CancellationToken,
    ) -> Result<Vec<Vec<f32>>, JobError> {
        let hashes: Vec<String> = texts.iter().map(|t| sha256(t)).collect();
        let mut unique: Vec<usize> = Vec::new();
        let mut seen = HashMap::new();
        for (i, h) in hashes.iter().enumerate() {
            seen.entry(h.clone()).or_insert_with(|| {
                unique.push(i);
                i
            });
        }
        let keys: Vec<String> = unique.iter().map(|&i| hashes[i].clone()).collect();
        let mut found = self.store.cached(&self.tables, &keys).await.retryable()?;
        let misses: Vec<usize> = unique
            .iter()
            .copied()
            .filter(|&i| !found.contains_key(&hashes[i]))
            .collect();
        let space = &self.tables.space;
        metrics::counter!("chatter_embedding_cache_requests_total", "result" => "hit", "model" => space.model.clone())
            .increment((unique.len() - misses.len()) as u64);
        metrics::counter!("chatter_embedding_cache_requests_total", "result" => "miss", "model" => space.model.clone())
            .increment(misses.len() as u64);
        let tokens: Vec<usize> = misses
            .iter()
            .map(|&i| self.provider.count_tokens(&texts[i]))
            .collect();
        for range in plan_requests(&tokens, self.provider.limits()) {
            let idx = &misses[range.clone()];
            let batch: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
            let cost: usize = tokens[range].iter().sum();
            let vectors = self.request(&batch, cost as u64, cancel).await?;
            let items: Vec<(String, Vec<f32>)> = idx
                .iter()
                .zip(vectors)
                .map(|(&i, v)| (hashes[i].clone(), v))
                .collect();
            // Cached before anything else can fail: a retry of this job will not pay again.
            self.store
                .cache_put(&self.tables, &items)
                .await
                .retryable()?;
            found.extend(items);
        }
        hashes
            .iter()
            .map(|h| {
                found
                    .get(h)
                    .cloned()
                    .ok_or_else(|| JobError::Retry("a vector went missing".into()))
            })
            .collect()
    }

    /// One provider request, within the account's rate limit, retried in place.
    async fn request(
        &self,
        texts: &[String],
        tokens: u64,
        cancel: &CancellationToken,
    ) -> Result<Vec<Vec<f32>>, JobError> {
        let s = &self.settings;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(s.min_backoff)
            .with_max_delay(s.max_backoff)
            .with_jitter()
            .with_max_times(s.max_retries)
            .build();
        let provider = self.tables.space.provider.clone();
        loop {
            limiter::take(
                self.limiter.as_ref(),
                &self.provider.limit_key(),
                &provider,
                tokens,
                cancel,
            )
            .await?;
            let started = Instant::now();
            let result = tokio::select! {
                r = self.provider.embed(texts) => r,
                _ = cancel.cancelled() => return Err(JobError::Cancelled),
            };
            let outcome = match &result {
                Ok(_) => "ok",
                Err(ProviderError::Retryable { .. }) => "retryable",
                Err(ProviderError::Final(_)) => "failed",
            };
            metrics::counter!("chatter_embedding_requests_total", "provider" => provider.clone(), "outcome" => outcome)
                .increment(1);
            metrics::histogram!("chatter_embedding_request_duration_seconds", "provider" => provider.clone())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(v) => {
                    metrics::counter!("chatter_embedding_inputs_total", "provider" => provider.clone())
                        .increment(texts.len() as u64);
                    return Ok(v);
                }
                Err(ProviderError::Final(m)) => return Err(JobError::Fatal(m)),
                Err(ProviderError::Retryable {
                    message,
                    retry_after,
                }) => {
                    if let Some(after) = retry_after
                        && after > s.max_retry_after
                    {
                        tracing::warn!(%message, ?after, "provider asks for a long wait: snoozing");
                        return Err(JobError::Snooze(after));
                    }
                    let Some(delay) = backoff.next() else {
                        return Err(JobError::Retry(message));
                    };
                    let wait = retry_after.unwrap_or(delay);
                    tracing::info!(%message, ?wait, "provider request failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => return Err(JobError::Cancelled),
                    }
                }
            }
        }
    }

    /// Top-k chunks for a text query, optionally one owner's and some documents' only.
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        owner: Option<&str>,
        documents: Option<&[String]>,
    ) -> Result<Vec<Hit>, JobError> {
        let v = self
            .embed_texts(&[query.to_string()], &CancellationToken::new())
            .await?;
        self.store
            .search(
                &self.tables,
                &v[0],
                k,
                owner,
                documents,
                self.settings.ef_search,
            )
            .await
            .retryable()
    }

    async fn event(&self, document_id: &str, job: &Job, kind: &str, extra: Value) {
        publish_document_event(
            self.outbox.as_ref(),
            kind,
            document_id,
            job.created_by_user_id.as_deref(),
            &job.id,
            extra,
        )
        .await
    }
}
