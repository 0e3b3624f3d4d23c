//! The node kinds and their settings, typed: each kind's `config` is read into its struct (named
//! defaults, unknown keys ignored: Chatter's editor adds its own) and checked; every problem
//! names the field. Templates (prompts, queries) are checked by the template engine here, so a
//! broken one is refused at enqueue rather than met mid-run.
use crate::template;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    Start,
    End(EndConfig),
    Llm(LlmConfig),
    Tools(ToolsConfig),
    Memory(MemoryConfig),
    Retrieval(RetrievalConfig),
    Conditional,
    Loop(LoopConfig),
    Variable(VariableConfig),
    ErrorHandler(ErrorHandlerConfig),
    Delay(DelayConfig),
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Start => "start",
            NodeKind::End(_) => "end",
            NodeKind::Llm(_) => "llm",
            NodeKind::Tools(_) => "tools",
            NodeKind::Memory(_) => "memory",
            NodeKind::Retrieval(_) => "retrieval",
            NodeKind::Conditional => "conditional",
            NodeKind::Loop(_) => "loop",
            NodeKind::Variable(_) => "variable",
            NodeKind::ErrorHandler(_) => "error_handler",
            NodeKind::Delay(_) => "delay",
        }
    }
}

/// The kinds Chatter's definitions use (`model` is `llm`'s other name).
pub const KINDS: [&str; 12] = [
    "start",
    "end",
    "model",
    "llm",
    "tools",
    "memory",
    "retrieval",
    "conditional",
    "loop",
    "variable",
    "error_handler",
    "delay",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndConfig {
    /// The run's response; default: the last model message.
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub system_prompt: Option<String>,
    /// The user message; default: the run's input `message`.
    pub prompt: Option<String>,
    /// Tools (declared in the worker's configuration) the model may call.
    #[serde(alias = "available_tools")]
    pub tools: Vec<String>,
    /// Stream tokens to the owner as events.
    pub stream: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: None,
            model: None,
            temperature: None,
            max_tokens: None,
            system_prompt: None,
            prompt: None,
            tools: Vec::new(),
            stream: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolsConfig {
    pub available_tools: Vec<String>,
    pub tool_timeout_ms: u64,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            available_tools: Vec::new(),
            tool_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryAction {
    Store,
    Retrieve,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryConfig {
    #[serde(alias = "operation")]
    pub action: MemoryAction,
    /// Where the memory lives: the conversation id (a template; default the input's
    /// `conversation_id`).
    pub key: Option<String>,
    /// Messages retrieved, newest last.
    pub window: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            action: MemoryAction::Retrieve,
            key: None,
            window: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalConfig {
    /// A template; default the run's input `message`.
    pub query: Option<String>,
    pub limit: usize,
    /// Only these documents (default: all of the owner's).
    pub document_ids: Vec<String>,
    /// An external retrieval service (`POST {query, limit, document_ids, owner_id}` answering
    /// `{results: [{content, score, document_id?, chunk_id?}]}`); default: the embedding search.
    /// Refused at run time when it points at a private, loopback or link-local address that
    /// `[workflows] allow_networks` does not list.
    pub url: Option<String>,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            query: None,
            limit: 5,
            document_ids: Vec::new(),
            url: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoopConfig {
    pub max_iterations: u32,
    /// Goes round again while this holds (and fewer than `max_iterations` rounds ran); default:
    /// until `max_iterations`.
    pub condition: Option<String>,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            max_iterations: 10,
            condition: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableOp {
    Set,
    Get,
    Append,
    Increment,
    Decrement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableConfig {
    pub operation: VariableOp,
    #[serde(alias = "variable_name", alias = "name")]
    pub variable: String,
    /// For set / append: a JSON value, or a template when a string.
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Go on along the node's edges with the error recorded (`has_errors` holds).
    Continue,
    /// End the run `failed`.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorHandlerConfig {
    /// Attempts of the node before it, after its first failure.
    pub retry_count: u32,
    pub fallback_action: Fallback,
}

impl Default for ErrorHandlerConfig {
    fn default() -> Self {
        Self {
            retry_count: 3,
            fallback_action: Fallback::Continue,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelayType {
    Fixed,
    Random,
    Exponential,
    Dynamic,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DelayConfig {
    pub delay_type: DelayType,
    /// fixed: the delay; random: the lower bound; exponential: the base.
    #[serde(alias = "delay_ms", alias = "duration")]
    pub duration_ms: u64,
    /// random: the upper bound; exponential and dynamic: the cap.
    pub max_duration_ms: Option<u64>,
    /// dynamic: the variable holding the delay in ms.
    pub variable: Option<String>,
}

impl Default for DelayConfig {
    fn default() -> Self {
        Self {
            delay_type: DelayType::Fixed,
            duration_ms: 1000,
            max_duration_ms: None,
            variable: None,
        }
    }
}

/// The longest delay a node may ask for.
pub const MAX_DELAY_MS: u64 = 7 * 24 * 3_600_000;

/// One problem with a node's settings: the field (under the config's path) and what is wrong.
pub type FieldError = (String, String);

fn typed<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T, Vec<FieldError>> {
    serde_json::from_value(config.clone()).map_err(|e| {
        // serde_json names the field in its message ("missing field `variable`", "unknown
        // variant `sometimes`, expected one of ...").
        vec![(String::new(), e.to_string())]
    })
}

/// Read `config` as the settings of `kind` and check them.
pub fn parse(kind: &str, config: &Value) -> Result<NodeKind, Vec<FieldError>> {
    let mut errs: Vec<FieldError> = Vec::new();
    let template_error = |field: &str, t: &Option<String>| -> Option<FieldError> {
        let e = template::check(t.as_deref()?).err()?;
        Some((field.to_string(), format!("template error: {e}")))
    };
    let node = match kind {
        "start" => NodeKind::Start,
        "end" => {
            let c: EndConfig = typed(config)?;
            errs.extend(template_error("output", &c.output));
            NodeKind::End(c)
        }
        "model" | "llm" => {
            let c: LlmConfig = typed(config)?;
            errs.extend(template_error("system_prompt", &c.system_prompt));
            errs.extend(template_error("prompt", &c.prompt));
            if c.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                errs.push(("model".into(), "required: the chat model to call".into()));
            }
            if let Some(t) = c.temperature
                && !(0.0..=2.0).contains(&t)
            {
                errs.push(("temperature".into(), format!("{t} is outside 0..=2")));
            }
            if c.max_tokens == Some(0) {
                errs.push(("max_tokens".into(), "must be at least 1".into()));
            }
            NodeKind::Llm(c)
        }
        "tools" => {
            let c: ToolsConfig = typed(config)?;
            if c.available_tools.is_empty() {
                errs.push((
                    "available_tools".into(),
                    "required: at least one tool".into(),
                ));
            }
            if c.tool_timeout_ms == 0 {
                errs.push(("tool_timeout_ms".into(), "must be at least 1".into()));
            }
            NodeKind::Tools(c)
        }
        "memory" => {
            let c: MemoryConfig = typed(config)?;
            errs.extend(template_error("key", &c.key));
            if c.window == 0 || c.window > 1000 {
                errs.push(("window".into(), format!("{} is outside 1..=1000", c.window)));
            }
            NodeKind::Memory(c)
        }
        "retrieval" => {
            let c: RetrievalConfig = typed(config)?;
            errs.extend(template_error("query", &c.query));
            if c.limit == 0 || c.limit > 100 {
                errs.push(("limit".into(), format!("{} is outside 1..=100", c.limit)));
            }
            if let Some(u) = &c.url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                errs.push(("url".into(), format!("{u:?} is not an http(s) URL")));
            }
            NodeKind::Retrieval(c)
        }
        "conditional" => NodeKind::Conditional,
        "loop" => {
            let c: LoopConfig = typed(config)?;
            if c.max_iterations == 0 || c.max_iterations > 100 {
                errs.push((
                    "max_iterations".into(),
                    format!("{} is outside 1..=100", c.max_iterations),
                ));
            }
            if let Some(cond) = &c.condition
                && let Err(e) = crate::condition::parse(cond)
            {
                errs.push(("condition".into(), e.to_string()));
            }
            NodeKind::Loop(c)
        }
        "variable" => {
            let c: VariableConfig = typed(config)?;
            if c.variable.trim().is_empty() {
                errs.push(("variable".into(), "required: the variable's name".into()));
            }
            let needs_value = matches!(c.operation, VariableOp::Set | VariableOp::Append);
            if needs_value && c.value.is_none() {
                errs.push(("value".into(), format!("required for {:?}", c.operation)));
            }
            if let Some(Value::String(t)) = &c.value {
                errs.extend(template_error("value", &Some(t.clone())));
            }
            NodeKind::Variable(c)
        }
        "error_handler" => {
            let c: ErrorHandlerConfig = typed(config)?;
            if c.retry_count > 10 {
                errs.push((
                    "retry_count".into(),
                    format!("{} is above 10", c.retry_count),
                ));
            }
            NodeKind::ErrorHandler(c)
        }
        "delay" => {
            let c: DelayConfig = typed(config)?;
            let cap = c.max_duration_ms.unwrap_or(c.duration_ms);
            if c.duration_ms > MAX_DELAY_MS || cap > MAX_DELAY_MS {
                errs.push((
                    "duration_ms".into(),
                    format!("above {MAX_DELAY_MS} (7 days)"),
                ));
            }
            if c.delay_type == DelayType::Random
                && c.max_duration_ms.is_none_or(|m| m < c.duration_ms)
            {
                errs.push((
                    "max_duration_ms".into(),
                    "required for random, at least duration_ms".into(),
                ));
            }
            if c.delay_type == DelayType::Dynamic && c.variable.is_none() {
                errs.push(("variable".into(), "required for dynamic".into()));
            }
            NodeKind::Delay(c)
        }
        other => {
            return Err(vec![(
                "type".into(),
                format!("unknown node kind {other:?} (known: {})", KINDS.join(", ")),
            )]);
        }
    };
    if errs.is_empty() { Ok(node) } else { Err(errs) }
}
