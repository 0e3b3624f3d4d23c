//! A run's state: what the nodes read and write (inputs, variables, messages, the last
//! response, retrieved passages, pending tool calls, errors, loop counts) and what the execution
//! reports (tokens, cost, tool calls, the log). It is checkpointed whole after every node, so a
//! retried job resumes from the last checkpoint without repeating a finished node.
use crate::condition::Facts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// system | user | assistant | tool
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model sent them (JSON text).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    pub document_id: String,
    pub chunk_id: String,
    pub content: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub step: u32,
    pub node: String,
    pub kind: String,
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub inputs: Value,
    pub variables: BTreeMap<String, Value>,
    pub messages: Vec<Message>,
    pub last_response: String,
    pub retrieved: Vec<Passage>,
    /// The last model message's tool calls not yet run.
    pub pending_tool_calls: Vec<ToolCall>,
    pub errors: Vec<String>,
    /// Rounds each loop node has let through.
    pub loops: BTreeMap<String, u32>,
    /// The node to run next (an index into the workflow's nodes); None when the run ended.
    pub next: Option<usize>,
    /// Nodes run so far (the checkpoint's sequence number).
    pub step: u32,
    /// Failed attempts of the node about to run (for an error handler's retries).
    pub attempts: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    pub tool_calls: u64,
    /// The run's response, set by its end node.
    pub response: Option<String>,
    pub log: Vec<LogEntry>,
    /// A delay node being waited out: the time (ms since the epoch) it ends.
    pub wait_until_ms: Option<u64>,
}

impl State {
    pub fn new(inputs: Value, start: usize) -> Self {
        Self {
            inputs,
            next: Some(start),
            ..Self::default()
        }
    }

    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// What templates see: `input`, `variables` (also each at the top level), `messages`,
    /// `last_response`, `retrieved`, `errors`.
    pub fn context(&self) -> Value {
        let mut ctx = serde_json::Map::new();
        for (k, v) in &self.variables {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("input".into(), self.inputs.clone());
        ctx.insert(
            "variables".into(),
            serde_json::to_value(&self.variables).unwrap_or_default(),
        );
        ctx.insert(
            "messages".into(),
            serde_json::to_value(&self.messages).unwrap_or_default(),
        );
        ctx.insert(
            "last_response".into(),
            Value::String(self.last_response.clone()),
        );
        ctx.insert(
            "retrieved".into(),
            serde_json::to_value(&self.retrieved).unwrap_or_default(),
        );
        ctx.insert(
            "errors".into(),
            serde_json::to_value(&self.errors).unwrap_or_default(),
        );
        Value::Object(ctx)
    }
}

/// Conditions on the edges leaving a node read the state as it is after that node.
pub struct EdgeFacts<'a> {
    pub state: &'a State,
    /// Loop nodes that go round again, as decided by the node just run.
    pub continuing: Option<(&'a str, bool)>,
}

impl Facts for EdgeFacts<'_> {
    fn tool_calls(&self) -> u64 {
        self.state.pending_tool_calls.len() as u64
    }

    fn has_errors(&self) -> bool {
        !self.state.errors.is_empty()
    }

    fn variable(&self, name: &str) -> Option<String> {
        self.state.variables.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn loop_continues(&self, node: &str) -> bool {
        matches!(self.continuing, Some((n, true)) if n == node)
    }
}
