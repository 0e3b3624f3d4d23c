//! What a run's nodes reach through the engine's traits: chat completions (tokens streamed to
//! the run's publisher), retrieval (the embedding search, or a guarded retrieval URL), tool
//! calls, conversation memory in the store, and the fenced checkpoint after every node (which
//! also reports the job's progress).
use super::Runner;
use crate::JobContext;
use crate::JobError;
use crate::chunk::guard::BLOCKED;
use crate::embed::openai::chain;
use chatter_workflows::Workflow;
use chatter_workflows::engine::{ChatRequest, ChatResponse, Checkpoints, Services, StepError};
use chatter_workflows::state::{Message, Passage, State};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

impl Runner {
    async fn retrieve_url(
        &self,
        url: &str,
        owner: &str,
        query: &str,
        limit: usize,
        documents: &[String],
    ) -> Result<Vec<Passage>, StepError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StepError::fatal(format!("retrieval url {url:?}: {e}")))?;
        self.guard
            .check_url(&parsed)
            .map_err(|why| StepError::fatal(format!("retrieval url {url} {BLOCKED}: {why}")))?;
        let resp = self
            .http
            .post(parsed)
            .json(&json!({"query": query, "limit": limit, "document_ids": documents, "owner_id": owner}))
            .send()
            .await
            .map_err(|e| {
                let text = chain(&e);
                if text.contains(BLOCKED) {
                    StepError::fatal(format!("retrieval url {url}: {text}"))
                } else {
                    StepError::retryable(format!("retrieval url {url}: {text}"))
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            let msg = format!("retrieval url {url} answered {}", status.as_u16());
            return Err(if status.is_server_error() {
                StepError::retryable(msg)
            } else {
                StepError::fatal(msg)
            });
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| StepError::retryable(format!("retrieval url {url}: {}", chain(&e))))?;
        let results = v
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| StepError::fatal(format!("retrieval url {url}: no `results` array")))?;
        Ok(results
            .iter()
            .take(limit)
            .map(|r| Passage {
                document_id: r["document_id"].as_str().unwrap_or_default().to_string(),
                chunk_id: r["chunk_id"].as_str().unwrap_or_default().to_string(),
                content: r["content"].as_str().unwrap_or_default().to_string(),
                score: r["score"].as_f64().unwrap_or(0.0),
            })
            .collect())
    }
}

/// One run's view of the runner: what its nodes call, and where its checkpoints go.
pub(super) struct Run<'a> {
    pub(super) runner: &'a Runner,
    pub(super) owner: &'a str,
    pub(super) execution: &'a str,
    pub(super) fence: i64,
    pub(super) workflow: &'a Workflow,
    pub(super) ctx: &'a JobContext,
    pub(super) tokens: mpsc::UnboundedSender<(String, u64, String)>,
    /// Model calls made by this attempt (numbers the token events of each).
    pub(super) calls: AtomicU64,
    /// Log entries already recorded in metrics.
    pub(super) logged: AtomicUsize,
    pub(super) job_id: &'a str,
}

impl Run<'_> {
    /// Node durations by kind, for the log entries not yet recorded.
    pub(super) fn record_nodes(&self, state: &State) {
        let from = self.logged.swap(state.log.len(), Ordering::Relaxed);
        for l in state.log.iter().skip(from) {
            metrics::histogram!("chatter_workflow_node_duration_seconds", "kind" => l.kind.clone())
                .record(l.ms as f64 / 1000.0);
        }
    }
}

fn retryable(e: impl std::fmt::Display) -> StepError {
    StepError::retryable(e.to_string())
}

impl Services for Run<'_> {
    fn chat<'a>(&'a self, req: ChatRequest) -> BoxFuture<'a, Result<ChatResponse, StepError>> {
        Box::pin(async move {
            let client = self.runner.provider(req.provider.as_deref())?;
            let tools = self.runner.tools.schemas(&req.tools)?;
            let node = req.node.clone();
            let call = self.calls.fetch_add(1, Ordering::Relaxed);
            let tx = self.tokens.clone();
            let on_token = move |t: &str| {
                let _ = tx.send((node.clone(), call, t.to_string()));
            };
            let mut r = client.complete(&req, &tools, &on_token).await?;
            r.cost = self.runner.cost(&req.model, &r);
            Ok(r)
        })
    }

    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        limit: usize,
        documents: &'a [String],
        url: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Passage>, StepError>> {
        Box::pin(async move {
            if let Some(url) = url {
                return self
                    .runner
                    .retrieve_url(url, self.owner, query, limit, documents)
                    .await;
            }
            let e = self.runner.embedder.as_ref().ok_or_else(|| {
                StepError::fatal("retrieval needs an embedding provider ([embedding] provider)")
            })?;
            let docs = (!documents.is_empty()).then_some(documents);
            let hits = e
                .search(query, limit, Some(self.owner), docs)
                .await
                .map_err(|err| match err {
                    JobError::Fatal(m) => StepError::fatal(m),
                    other => retryable(other),
                })?;
            Ok(hits
                .into_iter()
                .map(|h| Passage {
                    document_id: h.document_id,
                    chunk_id: h.chunk_id,
                    content: h.content,
                    score: h.score,
                })
                .collect())
        })
    }

    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(self.runner.tools.call(name, arguments, timeout))
    }

    fn memory_load<'a>(
        &'a self,
        key: &'a str,
        window: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StepError>> {
        Box::pin(async move {
            self.runner
                .store
                .memory_load(self.owner, key, window)
                .await
                .map_err(retryable)
        })
    }

    fn memory_store<'a>(
        &'a self,
        key: &'a str,
        messages: &'a [Message],
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            self.runner
                .store
                .memory_store(self.owner, key, messages)
                .await
                .map_err(retryable)
        })
    }
}

impl Checkpoints for Run<'_> {
    fn save<'a>(&'a self, state: &'a State) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            self.record_nodes(state);
            let saved = self
                .runner
                .store
                .save_step(self.execution, self.job_id, self.fence, state)
                .await
                .map_err(retryable)?;
            if !saved {
                return Err(StepError::fatal(format!(
                    "execution {} is run by a newer claim",
                    self.execution
                )));
            }
            if let Some(l) = state.log.last() {
                let n = self.workflow.nodes.len().max(1) as u32;
                self.ctx.progress(
                    (state.step * 100 / n).min(99) as u8,
                    format!("node {}", l.node),
                );
            }
            Ok(())
        })
    }
}
