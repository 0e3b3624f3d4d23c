//! What each node kind does to the run's state: the bodies the executor's loop calls, one arm
//! per kind. Calls to the outside world go through [`Services`]; a tools node checkpoints after
//! every call, so a crash between two calls repeats neither.
use crate::engine::{ChatRequest, Engine, Flow, StepError};
use crate::node::{DelayType, MemoryAction, NodeKind, VariableOp};
use crate::state::{EdgeFacts, Message, State};
use crate::{condition, template};
use serde_json::Value;
use std::time::Duration;

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
    /// Run node `i` once.
    pub(crate) async fn node(&self, i: usize, state: &mut State) -> Result<Flow, StepError> {
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
                // The user's turn, unless the model is being handed tool results. The state
                // changes only once the call succeeded: a retried node starts from it as it was.
                let turn = if state.messages.last().is_none_or(|m| m.role != "tool") {
                    let prompt = template_or_input(c.prompt.as_deref(), "message", state)?;
                    Some(Message::new("user", prompt))
                } else {
                    None
                };
                let mut messages = Vec::new();
                if let Some(t) = &c.system_prompt {
                    messages.push(Message::new("system", render(t, state)?));
                }
                messages.extend(state.messages.iter().cloned());
                messages.extend(turn.iter().cloned());
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
                state.prompt_tokens = state.prompt_tokens.saturating_add(r.prompt_tokens);
                state.completion_tokens =
                    state.completion_tokens.saturating_add(r.completion_tokens);
                state.cost += r.cost;
                state.last_response = r.content.clone();
                state.pending_tool_calls = r.tool_calls.clone();
                state.messages.extend(turn);
                state.messages.push(Message {
                    tool_calls: r.tool_calls,
                    ..Message::new("assistant", r.content)
                });
            }
            NodeKind::Tools(c) => {
                // One call at a time, each checkpointed: after a crash the calls that finished
                // are not made again.
                // A call leaves the pending list only once answered: a timed-out or
                // interrupted call is made again, a finished one never.
                while let Some(call) = state.pending_tool_calls.first().cloned() {
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
                    state.pending_tool_calls.remove(0);
                    state.messages.push(Message {
                        tool_call_id: Some(call.id.clone()),
                        ..Message::new("tool", content)
                    });
                    if !state.pending_tool_calls.is_empty() {
                        self.checkpoints
                            .save(state)
                            .await
                            .map_err(|e| StepError::retryable(format!("checkpoint: {e}")))?;
                    }
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
                    .retrieve(&query, c.limit, &c.document_ids, c.url.as_deref())
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
                        let t = now_ms().saturating_add(ms);
                        state.wait_until_ms = Some(t);
                        t
                    }
                };
                let left = Duration::from_millis(until.saturating_sub(now_ms()));
                if left > self.limits.inline_delay {
                    return Ok(Flow::Wait(left));
                }
                // A zero sleep would still wait for the timer's next tick (about 1 ms).
                if !left.is_zero() {
                    tokio::time::sleep(left).await;
                }
                state.wait_until_ms = None;
            }
        }
        Ok(Flow::Next(None))
    }
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

/// The longest any delay waits (30 days), whatever its settings or variable say.
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

fn delay_ms(kind: DelayType, base: u64, max: Option<u64>, var: Option<&str>, state: &State) -> u64 {
    let cap = max.unwrap_or(MAX_DELAY_MS).min(MAX_DELAY_MS);
    let base = base.min(cap);
    match kind {
        DelayType::Fixed => base,
        DelayType::Random => {
            let hi = max.unwrap_or(base).clamp(base, cap);
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
            .map_or(base, |ms| ms.clamp(0.0, cap as f64) as u64)
            .min(cap),
    }
}
