//! The executor: runs a validated workflow node by node from a [`State`], checkpointing the
//! state after every node, so a run stopped anywhere (crash, retry, snooze for a long delay)
//! resumes at the first unfinished node and repeats no finished model or tool call. The outside
//! world comes in through [`Services`] (chat model, retrieval, tools, memory) and
//! [`Checkpoints`]; the jobs crate implements both, tests use in-memory ones.
use crate::node::{DelayType, Fallback, MemoryAction, NodeKind, VariableOp};
use crate::state::{EdgeFacts, Message, Passage, State, ToolCall};
use crate::validate::Workflow;
use crate::{condition, template};
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
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        limit: usize,
        documents: &'a [String],
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A node's template rendered, or without one the run's input `key` (as text).
fn template_or_input(t: Option<&str>, key: &str, state: &State) -> Result<String, StepError> {
    match t {
        Some(t) => render(t, state),
        None => Ok(state
            .inputs
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()),
    }
}

fn render(t: &str, state: &State) -> Result<String, StepError> {
    template::render(t, &state.context()).map_err(|e| StepError::fatal(format!("template: {e}")))
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
            let node = &self.workflow.nodes[i];
            let started = Instant::now();
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return RunOutcome::Cancelled,
                r = tokio::time::timeout(self.limits.step_timeout, self.node(i, state)) => r.unwrap_or_else(|_| {
                    Err(StepError::retryable(format!("step timed out after {:?}", self.limits.step_timeout)))
                }),
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

    async fn node(&self, i: usize, state: &mut State) -> Result<Flow, StepError> {
        let node = &self.workflow.nodes[i];
        match &node.kind {
            NodeKind::Start | NodeKind::Conditional | NodeKind::ErrorHandler(_) => {}
            NodeKind::End(c) => {
                state.response = Some(match &c.output {
                    Some(t) => render(t, state)?,
                    None => state.last_response.clone(),
                });
            }
            NodeKind::Llm(c) => {
                if state.tokens() >= self.limits.token_budget {
                    return Err(StepError::fatal(format!(
                        "token budget of {} spent ({} used)",
                        self.limits.token_budget,
                        state.tokens()
                    )));
                }
                // The user's turn, unless the model is being handed tool results.
                if state.messages.last().is_none_or(|m| m.role != "tool") {
                    let prompt = template_or_input(c.prompt.as_deref(), "message", state)?;
                    state.messages.push(Message::new("user", prompt));
                }
                let mut messages = Vec::new();
                if let Some(t) = &c.system_prompt {
                    messages.push(Message::new("system", render(t, state)?));
                }
                messages.extend(state.messages.iter().cloned());
                let r = self
                    .services
                    .chat(ChatRequest {
                        node: node.id.clone(),
                        provider: c.provider.clone(),
                        model: c.model.clone().unwrap_or_default(),
                        temperature: c.temperature,
                        max_tokens: c.max_tokens,
                        messages,
                        tools: c.tools.clone(),
                        stream: c.stream,
                    })
                    .await?;
                state.prompt_tokens += r.prompt_tokens;
                state.completion_tokens += r.completion_tokens;
                state.cost += r.cost;
                state.last_response = r.content.clone();
                state.pending_tool_calls = r.tool_calls.clone();
                state.messages.push(Message {
                    tool_calls: r.tool_calls,
                    ..Message::new("assistant", r.content)
                });
            }
            NodeKind::Tools(c) => {
                let calls = std::mem::take(&mut state.pending_tool_calls);
                for call in &calls {
                    let result = if !c.available_tools.contains(&call.name) {
                        Err(StepError::fatal(format!(
                            "tool {:?} is not available to this node",
                            call.name
                        )))
                    } else {
                        match serde_json::from_str::<Value>(&call.arguments) {
                            Err(e) => Err(StepError::fatal(format!(
                                "tool {:?}: arguments are not JSON: {e}",
                                call.name
                            ))),
                            Ok(args) => {
                                self.services
                                    .call_tool(
                                        &call.name,
                                        args,
                                        Duration::from_millis(c.tool_timeout_ms),
                                    )
                                    .await
                            }
                        }
                    };
                    state.tool_calls += 1;
                    // A failed call goes back to the model as the tool's answer: it can recover.
                    let content = match result {
                        Ok(v) => v.to_string(),
                        Err(e) => {
                            state.errors.push(format!("{}: {}", node.id, e.message));
                            serde_json::json!({ "error": e.message }).to_string()
                        }
                    };
                    state.messages.push(Message {
                        tool_call_id: Some(call.id.clone()),
                        ..Message::new("tool", content)
                    });
                }
            }
            NodeKind::Memory(c) => {
                let key = template_or_input(c.key.as_deref(), "conversation_id", state)?;
                match c.action {
                    MemoryAction::Retrieve => {
                        let mut history = self.services.memory_load(&key, c.window).await?;
                        history.append(&mut state.messages);
                        state.messages = history;
                    }
                    MemoryAction::Store => {
                        let turn: Vec<Message> =
                            state.messages.iter().rev().take(2).rev().cloned().collect();
                        self.services.memory_store(&key, &turn).await?;
                    }
                }
            }
            NodeKind::Retrieval(c) => {
                let query = template_or_input(c.query.as_deref(), "message", state)?;
                state.retrieved = self
                    .services
                    .retrieve(&query, c.limit, &c.document_ids)
                    .await?;
            }
            NodeKind::Loop(c) => {
                let rounds = state.loops.get(&node.id).copied().unwrap_or(0);
                let wants = match &c.condition {
                    None => true,
                    Some(text) => condition::parse(text)
                        .map_err(|e| StepError::fatal(e.to_string()))?
                        .eval(&EdgeFacts {
                            state,
                            continuing: None,
                        }),
                };
                let go = wants && rounds < c.max_iterations;
                state
                    .loops
                    .insert(node.id.clone(), if go { rounds + 1 } else { 0 });
                return Ok(Flow::Next(Some(go)));
            }
            NodeKind::Variable(c) => variable(c.operation, &c.variable, c.value.as_ref(), state)?,
            NodeKind::Delay(c) => {
                let until = match state.wait_until_ms {
                    Some(t) => t,
                    None => {
                        let ms = delay_ms(
                            c.delay_type,
                            c.duration_ms,
                            c.max_duration_ms,
                            c.variable.as_deref(),
                            state,
                        );
                        let t = now_ms() + ms;
                        state.wait_until_ms = Some(t);
                        t
                    }
                };
                let left = Duration::from_millis(until.saturating_sub(now_ms()));
                if left > self.limits.inline_delay {
                    return Ok(Flow::Wait(left));
                }
                tokio::time::sleep(left).await;
                state.wait_until_ms = None;
            }
        }
        Ok(Flow::Next(None))
    }
}

/// What a node hands the loop: go on (with a loop node's decision), or wait.
enum Flow {
    Next(Option<bool>),
    Wait(Duration),
}

fn variable(
    op: VariableOp,
    name: &str,
    value: Option<&Value>,
    state: &mut State,
) -> Result<(), StepError> {
    let value = match value {
        Some(Value::String(t)) => Some(Value::String(render(t, state)?)),
        other => other.cloned(),
    };
    let current = state.variables.get(name).cloned();
    let number = |v: &Option<Value>| v.as_ref().and_then(Value::as_f64).unwrap_or(0.0);
    let step = value.as_ref().and_then(Value::as_f64).unwrap_or(1.0);
    let new = match op {
        VariableOp::Set => value.unwrap_or(Value::Null),
        VariableOp::Get => {
            state.last_response = match &current {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            return Ok(());
        }
        VariableOp::Append => {
            let mut list = match current {
                Some(Value::Array(a)) => a,
                None | Some(Value::Null) => Vec::new(),
                Some(other) => vec![other],
            };
            list.push(value.unwrap_or(Value::Null));
            Value::Array(list)
        }
        VariableOp::Increment => serde_json::json!(number(&current) + step),
        VariableOp::Decrement => serde_json::json!(number(&current) - step),
    };
    state.variables.insert(name.to_string(), new);
    Ok(())
}

fn delay_ms(kind: DelayType, base: u64, max: Option<u64>, var: Option<&str>, state: &State) -> u64 {
    let cap = max.unwrap_or(u64::MAX);
    match kind {
        DelayType::Fixed => base,
        DelayType::Random => {
            let hi = max.unwrap_or(base).max(base);
            use std::hash::{BuildHasher, RandomState};
            base + RandomState::new().hash_one(now_ms()) % (hi - base + 1)
        }
        // Doubles with each failed attempt recorded so far.
        DelayType::Exponential => base
            .saturating_mul(1u64 << state.errors.len().min(20))
            .min(cap),
        DelayType::Dynamic => var
            .and_then(|v| state.variables.get(v))
            .and_then(Value::as_f64)
            .map_or(base, |ms| ms.max(0.0) as u64)
            .min(cap),
    }
}
