//! The `run_workflow` handler: runs a Chatter workflow durably with the engine of
//! `chatter-workflows`, wired to the world here.
//!
//! A run is one `workflow_executions` row (id: the job's `execution_id`, else the job id).
//! After every node the whole state is checkpointed in `workflow_steps` under the job's claim
//! (fence), so a retried or rescued job resumes at the first unfinished node and repeats no
//! finished model or tool call. Model calls go to an OpenAI-compatible provider
//! ([`chat::ChatClient`]; streamed tokens are published as `workflow.token` events to the
//! owner), tools to the configured HTTP tools ([`tools::Tools`]), retrieval to the embedding
//! search (or a guarded retrieval URL), memory to the store. A long delay snoozes the job; a
//! user's cancel ends the run `cancelled`; a shutdown or a lost claim leaves it to resume.
pub mod chat;
mod labels;
mod run;
mod services;
pub mod tools;

use crate::chunk::guard::Guard;
use crate::embed::Embedder;
use crate::kinds::workflows::{RUN_WORKFLOW, check_run};
use crate::outbox::Outbox;
use crate::registry::{Registry, queues};
use crate::store::WorkflowStore;
use chat::ChatClient;
use chatter_workflows::engine::{ChatResponse, Limits, StepError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
}
