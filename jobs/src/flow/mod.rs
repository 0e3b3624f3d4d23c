//! The `run_workflow` handler: runs a Chatter workflow durably with the engine of
//! `chatter-workflows`, wired to the world here.
//!
//! A run is one `workflow_executions` row (id: the job's `execution_id`, else the job id).
//! After every node the whole state is checkpointed in `workflow_steps` under the job's claim
//! (fence), so a retried or rescued job resumes at the first unfinished node and repeats no
//! finished model or tool call. Model calls go to an OpenAI-compatible provider
//! ([`chat::ChatClient`]; streamed tokens are published as `workflow.token` events to the
//! owner), tools to the configured HTTP tools ([`tools::Tools`]), retrieval to the embedding
//! search (or a guarded retrieval URL), memory to PostgreSQL. A long delay snoozes the job; a
//! user's cancel ends the run `cancelled`; a shutdown or a lost claim leaves it to resume.
pub mod chat;
pub mod tools;

use crate::chunk::guard::{BLOCKED, Guard};
use crate::embed::Embedder;
use crate::embed::openai::chain;
use crate::kinds::workflows::{RUN_WORKFLOW, RunWorkflowArgs, check_run};
use crate::outbox::Outbox;
use crate::registry::{Registry, queues};
use crate::store::WorkflowStore;
use crate::store::workflows::{Begun, Ending, NewExecution};
use crate::{Job, JobContext, JobError};
use chat::ChatClient;
use chatter_workflows::engine::{
    ChatRequest, ChatResponse, Checkpoints, Engine, Limits, RunOutcome, Services, StepError,
};
use chatter_workflows::state::{Message, Passage, State};
use chatter_workflows::{Definition, Workflow};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tools::Tools;

/// Price of a model, in the configured currency per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
}

#[derive(Debug, Clone)]
pub struct WorkflowSettings {
    /// Running time of one execution across its attempts (delays waited out of the worker and
    /// retry backoff not counted).
    pub execution_timeout: Duration,
    pub step_timeout: Duration,
    pub token_budget: u64,
    /// Delays up to this long are waited in the worker; longer ones snooze the job.
    pub inline_delay: Duration,
    pub max_steps: u32,
    pub prices: HashMap<String, Price>,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        let l = Limits::chatter(Instant::now());
        Self {
            execution_timeout: Duration::from_secs(300),
            step_timeout: l.step_timeout,
            token_budget: l.token_budget,
            inline_delay: l.inline_delay,
            max_steps: l.max_steps,
            prices: HashMap::new(),
        }
    }
}

pub struct Runner {
    settings: WorkflowSettings,
    store: Arc<dyn WorkflowStore>,
    outbox: Arc<dyn Outbox>,
    /// Chat providers by name; `default` serves nodes that name none (or an unknown one when
    /// only one provider is configured).
    providers: HashMap<String, Arc<ChatClient>>,
    default_provider: Option<String>,
    tools: Arc<Tools>,
    embedder: Option<Arc<Embedder>>,
    guard: Guard,
    http: reqwest::Client,
}

impl Runner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: WorkflowSettings,
        store: impl WorkflowStore + 'static,
        outbox: Arc<dyn Outbox>,
        providers: Vec<ChatClient>,
        default_provider: Option<String>,
        tools: Tools,
        embedder: Option<Arc<Embedder>>,
        guard: Guard,
    ) -> Result<Self, String> {
        let providers: HashMap<String, Arc<ChatClient>> = providers
            .into_iter()
            .map(|c| (c.name().to_string(), Arc::new(c)))
            .collect();
        if let Some(d) = &default_provider
            && !providers.contains_key(d)
        {
            return Err(format!("default provider {d:?} is not configured"));
        }
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(guard.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.step_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            settings,
            store: Arc::new(store),
            outbox,
            providers,
            default_provider,
            tools: Arc::new(tools),
            embedder,
            guard,
            http,
        })
    }

    pub fn install(self: Arc<Self>, registry: &mut Registry) {
        registry.register_checked(
            RUN_WORKFLOW,
            queues::WORKFLOWS,
            move |job, ctx| {
                let me = self.clone();
                async move { me.run(job, ctx).await }
            },
            check_run,
        );
    }

    fn provider(&self, name: Option<&str>) -> Result<&Arc<ChatClient>, StepError> {
        if let Some(c) = name.and_then(|n| self.providers.get(n)) {
            return Ok(c);
        }
        let fallback = self
            .default_provider
            .as_deref()
            .and_then(|d| self.providers.get(d))
            .or_else(|| (self.providers.len() == 1).then(|| self.providers.values().next())?);
        fallback.ok_or_else(|| {
            StepError::fatal(match name {
                Some(n) => format!(
                    "no chat provider {n:?} is configured ([workflows.providers.{n}]) and no default"
                ),
                None => "no chat provider is configured: set [workflows] base_url".into(),
            })
        })
    }

    fn cost(&self, model: &str, r: &ChatResponse) -> f64 {
        self.settings.prices.get(model).map_or(0.0, |p| {
            (r.prompt_tokens as f64 * p.prompt_per_million
                + r.completion_tokens as f64 * p.completion_per_million)
                / 1e6
        })
    }

    /// The definition a job names, with its workflow type and definition id.
    async fn definition(&self, a: &RunWorkflowArgs) -> Result<(Value, &'static str), JobError> {
        match (&a.definition, &a.definition_id) {
            (Some(d), _) => Ok((d.clone(), "custom")),
            (None, Some(id)) => match self.store.workflow_definition(id, &a.owner).await {
                Ok(Some(d)) => Ok((d, "definition")),
                Ok(None) => Err(JobError::Fatal(format!(
                    "no workflow definition {id:?} of owner {:?}",
                    a.owner
                ))),
                Err(e) => Err(JobError::Retry(e.to_string())),
            },
            (None, None) => Err(JobError::Fatal(
                "`definition` or `definition_id` is required".into(),
            )),
        }
    }

    pub async fn run(&self, job: Job, ctx: JobContext) -> Result<Value, JobError> {
        check_run(&job).map_err(JobError::Fatal)?;
        let args: RunWorkflowArgs = job.kwargs_as().map_err(JobError::Fatal)?;
        let (def_json, workflow_type) = self.definition(&args).await?;
        let def: Definition = serde_json::from_value(def_json.clone()).map_err(|e| {
            JobError::Fatal(format!("`definition` is not a workflow definition: {e}"))
        })?;
        let workflow = chatter_workflows::validate(&def)
            .map_err(|e| JobError::Fatal(format!("`definition`: {e}")))?;
        let execution = args.execution_id.clone().unwrap_or_else(|| job.id.clone());
        let fence = ctx.fence as i64;
        let inputs = if args.inputs.is_null() {
            json!({})
        } else {
            args.inputs.clone()
        };
        let begun = self
            .store
            .begin_execution(&NewExecution {
                id: &execution,
                definition_id: args.definition_id.as_deref(),
                owner_id: &args.owner,
                workflow_type,
                config: &def_json,
                inputs: &inputs,
                job_id: &job.id,
                fence,
            })
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let checkpoint = match begun {
            Begun::Running { checkpoint } => checkpoint,
            Begun::Ended {
                status,
                output,
                error,
            } => {
                return match status.as_str() {
                    "completed" => Ok(output.unwrap_or(Value::Null)),
                    "cancelled" => Err(JobError::Cancelled),
                    _ => Err(JobError::Fatal(error.unwrap_or(status))),
                };
            }
            Begun::Refused(why) => return Err(JobError::Fatal(why)),
        };
        let resumed = checkpoint.is_some();
        let mut state = checkpoint.map_or_else(|| State::new(inputs, workflow.start), |c| *c);
        let spent: u64 = state.log.iter().map(|l| l.ms).sum();
        let s = &self.settings;
        let limits = Limits {
            deadline: Instant::now()
                + s.execution_timeout
                    .saturating_sub(Duration::from_millis(spent)),
            step_timeout: s.step_timeout,
            token_budget: s.token_budget,
            inline_delay: s.inline_delay,
            max_steps: s.max_steps,
        };
        let name = label(&def.name);
        tracing::debug!(%execution, workflow = %name, resumed, step = state.step, "workflow run starts");

        // Tokens go out in order through one task, so a slow publish never stalls the stream.
        let (tokens, mut rx) = mpsc::unbounded_channel::<(String, u64, String)>();
        let outbox = self.outbox.clone();
        // `attempt` and `call` tell a consumer when a node's answer starts over (a retried
        // call streams again from its first token).
        let base = json!({
            "type": "workflow.token",
            "owner_id": args.owner,
            "job_id": job.id,
            "execution_id": execution,
            "attempt": ctx.attempt,
        });
        let publisher = tokio::spawn(async move {
            while let Some((node, call, delta)) = rx.recv().await {
                let mut e = base.clone();
                e["node"] = json!(node);
                e["call"] = json!(call);
                e["delta"] = json!(delta);
                if let Err(err) = outbox.publish(e).await {
                    tracing::debug!(error = %err, "token event not published");
                }
            }
        });
        let run = Run {
            runner: self,
            owner: &args.owner,
            execution: &execution,
            fence,
            workflow: &workflow,
            ctx: &ctx,
            tokens,
            calls: AtomicU64::new(0),
            logged: AtomicUsize::new(state.log.len()),
            job_id: &job.id,
        };
        let engine = Engine {
            workflow: &workflow,
            services: &run,
            checkpoints: &run,
            limits,
            cancel: ctx.cancel.clone(),
        };
        let outcome = engine.run(&mut state).await;
        run.record_nodes(&state);
        drop(run);
        let _ = publisher.await;

        let label_outcome = match &outcome {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed(_) => "failed",
            RunOutcome::Cancelled if ctx.cancelled_by_user() => "cancelled",
            RunOutcome::Cancelled => "interrupted",
            RunOutcome::Retry(_) => "retried",
            RunOutcome::Wait(_) => "waiting",
        };
        metrics::counter!("chatter_workflow_runs_total", "workflow" => bounded(&WORKFLOW_LABELS, &name), "outcome" => label_outcome)
            .increment(1);
        let output = output(&state);
        let end = |status: &'static str, error: Option<String>| {
            let store = self.store.clone();
            let execution = execution.clone();
            let job_id = job.id.clone();
            let output = output.clone();
            let state = &state;
            async move {
                let ending = Ending {
                    status,
                    output: Some(&output),
                    error: error.as_deref(),
                    state,
                };
                match store
                    .end_execution(&execution, &job_id, fence, &ending)
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(JobError::Fatal(format!(
                        "execution {execution} is run by a newer claim"
                    ))),
                    Err(e) => Err(JobError::Retry(e.to_string())),
                }
            }
        };
        match outcome {
            RunOutcome::Completed => {
                end("completed", None).await?;
                Ok(output)
            }
            RunOutcome::Failed(m) => {
                end("failed", Some(m.clone())).await?;
                Err(JobError::Fatal(m))
            }
            RunOutcome::Cancelled if ctx.cancelled_by_user() => {
                // The job ends cancelled whatever happens here (the reconciler finishes a row
                // this write missed).
                if let Err(e) = end("cancelled", Some("cancelled".into())).await {
                    tracing::warn!(%execution, error = %e, "cancelled run not recorded");
                }
                Err(JobError::Cancelled)
            }
            // Shutdown or a lost claim: the run resumes from its checkpoint elsewhere.
            RunOutcome::Cancelled => Err(JobError::Retry(
                "interrupted (shutdown or lost claim); resumes from its last checkpoint".into(),
            )),
            RunOutcome::Retry(m) => {
                // The failed try's log entry (and its time, which the execution timeout
                // counts) is kept; the state is as before the node, which runs again.
                if let Err(e) = self
                    .store
                    .save_step(&execution, &job.id, fence, &state)
                    .await
                {
                    tracing::debug!(%execution, error = %e, "failed try not checkpointed");
                }
                if ctx.attempt >= job.max_attempts() {
                    end("failed", Some(format!("{m} (attempts spent)"))).await?;
                }
                Err(JobError::Retry(m))
            }
            RunOutcome::Wait(d) => Err(JobError::Snooze(d)),
        }
    }

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

/// A workflow's name, short, for logs and metric labels.
fn label(name: &str) -> String {
    let n: String = name.chars().take(64).collect();
    if n.is_empty() { "(unnamed)".into() } else { n }
}

/// Distinct values a user-chosen metric label may take in one process; later ones are
/// `other`, so definitions named at will cannot grow the series without bound.
const MAX_LABELS: usize = 200;

pub(crate) static WORKFLOW_LABELS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashSet<String>>,
> = std::sync::LazyLock::new(Default::default);

/// `value`, or `other` once `MAX_LABELS` other values were seen.
pub(crate) fn bounded(
    seen: &std::sync::Mutex<std::collections::HashSet<String>>,
    value: &str,
) -> String {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(value) || (seen.len() < MAX_LABELS && seen.insert(value.to_string())) {
        value.to_string()
    } else {
        "other".into()
    }
}

/// An execution's output (Chatter's shape).
fn output(s: &State) -> Value {
    json!({
        "response": s.response,
        "execution_time_ms": s.log.iter().map(|l| l.ms).sum::<u64>(),
        "tokens_used": s.tokens(),
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cost": s.cost,
        "tool_calls": s.tool_calls,
        "errors": s.errors,
        "variables": s.variables,
    })
}

/// One run's view of the runner: what its nodes call, and where its checkpoints go.
struct Run<'a> {
    runner: &'a Runner,
    owner: &'a str,
    execution: &'a str,
    fence: i64,
    workflow: &'a Workflow,
    ctx: &'a JobContext,
    tokens: mpsc::UnboundedSender<(String, u64, String)>,
    /// Model calls made by this attempt (numbers the token events of each).
    calls: AtomicU64,
    /// Log entries already recorded in metrics.
    logged: AtomicUsize,
    job_id: &'a str,
}

impl Run<'_> {
    /// Node durations by kind, for the log entries not yet recorded.
    fn record_nodes(&self, state: &State) {
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
