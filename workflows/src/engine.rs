//! The executor: runs a validated workflow node by node from a [`State`], checkpointing the
//! state after every node, so a run stopped anywhere (crash, retry, snooze for a long delay)
//! resumes at the first unfinished node and repeats no finished model or tool call. The outside
//! world comes in through [`Services`] (chat model, retrieval, tools, memory) and
//! [`Checkpoints`]; the jobs crate implements both, tests use in-memory ones.
use crate::node::{Fallback, NodeKind};
use crate::state::{EdgeFacts, Message, Passage, State, ToolCall};
use crate::validate::Workflow;
use futures::future::BoxFuture;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub node: String,
    pub provider: Option<String>,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub messages: Vec<Message>,
    pub tools: Vec<String>,
    pub stream: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ChatResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
}

/// A node's failure: retryable ones (a provider's 5xx, a timeout) may succeed on another try.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
}

impl StepError {
    pub fn retryable(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            retryable: true,
        }
    }
    pub fn fatal(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            retryable: false,
        }
    }
}

type Step<'a, T> = BoxFuture<'a, Result<T, StepError>>;

/// What nodes call. Implementations record their own metrics and stream tokens to the owner.
pub trait Services: Send + Sync {
    fn chat<'a>(&'a self, req: ChatRequest) -> Step<'a, ChatResponse>;
    /// Passages for `query`: from `url` when the node names a retrieval service, else from
    /// the owner's embedded documents.
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        limit: usize,
        documents: &'a [String],
        url: Option<&'a str>,
    ) -> Step<'a, Vec<Passage>>;
    fn call_tool<'a>(
        &'a self,
        name: &'a str,
        arguments: Value,
        timeout: Duration,
    ) -> Step<'a, Value>;
    fn memory_load<'a>(&'a self, key: &'a str, window: usize) -> Step<'a, Vec<Message>>;
    fn memory_store<'a>(&'a self, key: &'a str, messages: &'a [Message]) -> Step<'a, ()>;
}

/// Where the state is kept between nodes.
pub trait Checkpoints: Send + Sync {
    fn save<'a>(&'a self, state: &'a State) -> Step<'a, ()>;
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// When the whole run must have ended (from its first start, across retries).
    pub deadline: Instant,
    pub step_timeout: Duration,
    pub token_budget: u64,
    /// Delays up to this long are waited in the worker; longer ones hand the slot back.
    pub inline_delay: Duration,
    /// Most nodes one run may execute (Chatter's recursion limit: 100).
    pub max_steps: u32,
}

impl Limits {
    /// Chatter's limits: 300 s per execution, 60 s per step, 100k tokens, 100 steps.
    pub fn chatter(now: Instant) -> Self {
        Self {
            deadline: now + Duration::from_secs(300),
            step_timeout: Duration::from_secs(60),
            token_budget: 100_000,
            inline_delay: Duration::from_secs(5),
            max_steps: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Completed,
    Failed(String),
    Cancelled,
    /// A retryable failure: run the job again later; it resumes at the failed node.
    Retry(String),
    /// A long delay: come back after this long.
    Wait(Duration),
}

pub struct Engine<'a> {
    pub workflow: &'a Workflow,
    pub services: &'a dyn Services,
    pub checkpoints: &'a dyn Checkpoints,
    pub limits: Limits,
    pub cancel: CancellationToken,
}

impl Engine<'_> {
    /// Run from `state` until the run ends, fails, is cancelled, or must wait or retry.
    pub async fn run(&self, state: &mut State) -> RunOutcome {
        while let Some(i) = state.next {
            if self.cancel.is_cancelled() {
                return RunOutcome::Cancelled;
            }
            if Instant::now() >= self.limits.deadline {
                return RunOutcome::Failed("execution timeout".into());
            }
            if state.step >= self.limits.max_steps {
                return RunOutcome::Failed(format!(
                    "recursion limit: {} steps ran without reaching an end node",
                    self.limits.max_steps
                ));
            }
            let node = &self.workflow.nodes[i];
            let started = Instant::now();
            // A node gets the step timeout, or what is left of the execution's time if less.
            let left = self.limits.deadline.saturating_duration_since(started);
            let budget = self.limits.step_timeout.min(left);
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return RunOutcome::Cancelled,
                r = tokio::time::timeout(budget, self.node(i, state)) => match r {
                    Ok(r) => r,
                    Err(_) if budget < self.limits.step_timeout => {
                        return RunOutcome::Failed(format!(
                            "execution timeout: node {:?} was still running when the execution's time ran out",
                            node.id
                        ));
                    }
                    Err(_) => Err(StepError::retryable(format!(
                        "step timed out after {:?}",
                        self.limits.step_timeout
                    ))),
                },
            };
            let ms = started.elapsed().as_millis() as u64;
            state.log.push(crate::state::LogEntry {
                step: state.step,
                node: node.id.clone(),
                kind: node.kind.name().into(),
                ms,
                error: result.as_ref().err().map(|e| e.message.clone()),
            });
            match result {
                Ok(Flow::Wait(d)) => {
                    if let Err(e) = self.checkpoints.save(state).await {
                        return RunOutcome::Retry(format!("checkpoint: {e}"));
                    }
                    return RunOutcome::Wait(d);
                }
                Ok(Flow::Next(continuing)) => {
                    state.attempts = 0;
                    state.next = match self.route(i, state, continuing) {
                        Ok(next) => next,
                        Err(e) => return RunOutcome::Failed(e),
                    };
                }
                Err(e) => match self.handler_after(i) {
                    Some((_, retries)) if state.attempts < retries => state.attempts += 1,
                    Some((h, _)) => {
                        state.attempts = 0;
                        state.errors.push(format!("{}: {}", node.id, e.message));
                        state.next = Some(h);
                    }
                    None if e.retryable => {
                        return RunOutcome::Retry(format!("node {:?}: {}", node.id, e.message));
                    }
                    None => {
                        return RunOutcome::Failed(format!("node {:?}: {}", node.id, e.message));
                    }
                },
            }
            state.step += 1;
            if let Err(e) = self.checkpoints.save(state).await {
                return RunOutcome::Retry(format!("checkpoint: {e}"));
            }
            if let Some(NodeKind::ErrorHandler(h)) =
                state.next.map(|n| &self.workflow.nodes[n].kind)
                && h.fallback_action == Fallback::Fail
                && !state.errors.is_empty()
            {
                return RunOutcome::Failed(state.errors.join("; "));
            }
        }
        RunOutcome::Completed
    }

    /// An error handler among node `i`'s targets: its index and retry count.
    fn handler_after(&self, i: usize) -> Option<(usize, u32)> {
        self.workflow
            .outgoing(i)
            .find_map(|e| match &self.workflow.nodes[e.target].kind {
                NodeKind::ErrorHandler(h) => Some((e.target, h.retry_count)),
                _ => None,
            })
    }

    /// The next node: the first edge whose condition holds, else the first without one (an
    /// error handler is reached only on an error). None after an end node.
    fn route(
        &self,
        i: usize,
        state: &State,
        continuing: Option<bool>,
    ) -> Result<Option<usize>, String> {
        let node = &self.workflow.nodes[i];
        if matches!(node.kind, NodeKind::End(_)) {
            return Ok(None);
        }
        let facts = EdgeFacts {
            state,
            continuing: continuing.map(|c| (node.id.as_str(), c)),
        };
        let edges: Vec<_> = self
            .workflow
            .outgoing(i)
            .filter(|e| {
                !matches!(
                    self.workflow.nodes[e.target].kind,
                    NodeKind::ErrorHandler(_)
                )
            })
            .collect();
        let hit = edges
            .iter()
            .find(|e| e.condition.as_ref().is_some_and(|c| c.eval(&facts)));
        let fallback = edges.iter().find(|e| e.condition.is_none());
        match hit.or(fallback) {
            Some(e) => Ok(Some(e.target)),
            None => Err(format!("node {:?}: no edge's condition holds", node.id)),
        }
    }
}

/// What a node hands the loop: go on (with a loop node's decision), or wait.
pub(crate) enum Flow {
    Next(Option<bool>),
    Wait(Duration),
}
