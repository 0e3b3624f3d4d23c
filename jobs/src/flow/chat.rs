//! The OpenAI-compatible chat completions API (`POST {base_url}/chat/completions`), which
//! OpenAI, Azure OpenAI, vLLM, Ollama and LiteLLM all speak: plain or streamed (server-sent
//! events, every content delta handed to `on_token` as it arrives), with tool calls and usage.
//! A failure before the first token is tried again twice (429, 5xx, timeouts, connection
//! errors; `Retry-After` honoured up to 10 s); after a token went out it is the node's error.
use crate::chunk::tokenizer::Tokenizer;
use crate::embed::openai::{chain, endpoint, provider_message, retry_after};
use chatter_workflows::engine::{ChatRequest, ChatResponse, StepError};
use chatter_workflows::state::{Message, ToolCall};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The provider's name in metrics and messages.
    pub name: String,
    /// e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    pub base_url: String,
    pub api_key: Option<String>,
    /// Longest one request may take, streamed body included.
    pub timeout: Duration,
}

pub struct ChatClient {
    config: ChatConfig,
    url: String,
    http: reqwest::Client,
    tokenizer: Tokenizer,
}

/// Model names seen as metric labels (user-chosen: bounded).
static MODEL_LABELS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
    std::sync::LazyLock::new(Default::default);

/// How many times a request is tried before the node fails.
const TRIES: u32 = 3;

impl ChatClient {
    pub fn new(config: ChatConfig) -> Result<Self, String> {
        let (url, http) = endpoint(&config.base_url, "chat/completions", config.timeout)?;
        Ok(Self {
            url,
            config,
            http,
            tokenizer: Tokenizer::cl100k(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// One chat completion; `tools` are OpenAI function tools. Content deltas of a streamed
    /// answer go to `on_token` as they arrive.
    pub async fn complete(
        &self,
        req: &ChatRequest,
        tools: &[Value],
        on_token: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<ChatResponse, StepError> {
        let body = request_body(req, tools);
        let mut tried = 0;
        loop {
            tried += 1;
            let started = Instant::now();
            let mut streamed = false;
            let r = self.once(&body, req.stream, on_token, &mut streamed).await;
            let outcome = match &r {
                Ok(_) => "ok",
                Err(e) if e.0.retryable => "retryable_error",
                Err(_) => "error",
            };
            let model = super::labels::bounded(&MODEL_LABELS, &req.model);
            metrics::histogram!("chatter_llm_request_duration_seconds",
                "provider" => self.config.name.clone(), "model" => model.clone(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
            match r {
                Ok(mut resp) => {
                    if resp.prompt_tokens == 0 && resp.completion_tokens == 0 {
                        // No usage reported: count with cl100k so budgets and costs still hold.
                        resp.prompt_tokens = req
                            .messages
                            .iter()
                            .map(|m| self.tokenizer.count(&m.content) as u64 + 4)
                            .sum();
                        resp.completion_tokens = self.tokenizer.count(&resp.content) as u64;
                    }
                    for (kind, n) in [
                        ("prompt", resp.prompt_tokens),
                        ("completion", resp.completion_tokens),
                    ] {
                        metrics::counter!("chatter_llm_tokens_total",
                            "provider" => self.config.name.clone(), "model" => model.clone(), "kind" => kind)
                        .increment(n);
                    }
                    return Ok(resp);
                }
                Err(Failure(e, wait)) if e.retryable && !streamed && tried < TRIES => {
                    let wait = wait
                        .unwrap_or(Duration::from_millis(500 << (tried - 1)))
                        .min(Duration::from_secs(10));
                    tracing::debug!(provider = %self.config.name, error = %e, ?wait, "chat request failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(Failure(e, _)) => return Err(e),
            }
        }
    }

    async fn once(
        &self,
        body: &Value,
        stream: bool,
        on_token: &(dyn Fn(&str) + Send + Sync),
        streamed: &mut bool,
    ) -> Result<ChatResponse, Failure> {
        let name = &self.config.name;
        let mut rb = self.http.post(&self.url).json(body);
        if let Some(k) = &self.config.api_key {
            rb = rb.bearer_auth(k);
        }
        let resp = rb.send().await.map_err(|e| {
            Failure(
                StepError::retryable(format!("provider {name}: {}", chain(&e))),
                None,
            )
        })?;
        let status = resp.status();
        if !status.is_success() {
            let wait = retry_after(resp.headers());
            let bytes = resp.bytes().await.unwrap_or_default();
            let msg = format!(
                "provider {name} answered {}: {}",
                status.as_u16(),
                provider_message(&bytes)
            );
            let retryable =
                status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error();
            return Err(Failure(
                if retryable {
                    StepError::retryable(msg)
                } else {
                    StepError::fatal(msg)
                },
                wait,
            ));
        }
        let broken =
            |e: String| Failure(StepError::retryable(format!("provider {name}: {e}")), None);
        if !stream {
            let v: Value = resp.json().await.map_err(|e| broken(chain(&e)))?;
            return parse_answer(&v).map_err(broken);
        }
        let mut out = ChatResponse::default();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut events = resp.bytes_stream().eventsource();
        // A stream must end with `[DONE]` or a finish reason: one cut short is an error (its
        // content would be half an answer), not a result.
        let mut ended = false;
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| broken(format!("stream broke: {e}")))?;
            let data = ev.data.trim();
            if data == "[DONE]" {
                ended = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| broken(format!("stream chunk is not JSON: {e}")))?;
            if let Some(err) = v.get("error") {
                return Err(broken(format!("stream error: {err}")));
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                out.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0);
                out.completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0);
            }
            if v.pointer("/choices/0/finish_reason")
                .is_some_and(|f| !f.is_null())
            {
                ended = true;
            }
            let Some(delta) = v.pointer("/choices/0/delta") else {
                continue;
            };
            if let Some(t) = delta.get("content").and_then(Value::as_str)
                && !t.is_empty()
            {
                *streamed = true;
                on_token(t);
                out.content.push_str(t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = tc.get("id").and_then(Value::as_str);
                // By index; a provider that sends none is keyed by the call's id.
                let i = match tc.get("index").and_then(Value::as_u64) {
                    Some(i) => i as usize,
                    None => id
                        .and_then(|id| calls.iter().position(|c| c.id == id))
                        .unwrap_or(calls.len().saturating_sub(usize::from(id.is_none()))),
                };
                if i > 127 {
                    return Err(broken(format!("tool call index {i} out of range")));
                }
                while calls.len() <= i {
                    calls.push(ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let c = &mut calls[i];
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    c.id = id.to_string();
                }
                // The name comes whole (some providers repeat it in every delta).
                if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str)
                    && c.name.is_empty()
                {
                    c.name = n.to_string();
                }
                if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                    c.arguments.push_str(a);
                }
            }
        }
        if !ended {
            return Err(broken(
                "the stream ended before [DONE] or a finish reason (cut short)".into(),
            ));
        }
        out.tool_calls = calls.into_iter().filter(|c| !c.name.is_empty()).collect();
        for c in &mut out.tool_calls {
            if c.arguments.trim().is_empty() {
                c.arguments = "{}".into();
            }
        }
        name_calls(&mut out.tool_calls);
        Ok(out)
    }
}

/// An error, and how long the provider asked to wait before the next try.
struct Failure(StepError, Option<Duration>);

fn message_json(m: &Message) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

pub fn request_body(req: &ChatRequest, tools: &[Value]) -> Value {
    let mut body = json!({
        "model": req.model,
        "messages": req.messages.iter().map(message_json).collect::<Vec<_>>(),
        "stream": req.stream,
    });
    if req.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = req.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if !tools.is_empty() {
        body["tools"] = json!(tools);
    }
    body
}

/// A non-streamed answer: the first choice's message and the usage.
pub fn parse_answer(v: &Value) -> Result<ChatResponse, String> {
    let m = v
        .pointer("/choices/0/message")
        .ok_or("the answer has no choices[0].message")?;
    let mut tool_calls: Vec<ToolCall> = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            arguments: c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}")
                .to_string(),
        })
        .filter(|c| !c.name.is_empty())
        .collect();
    name_calls(&mut tool_calls);
    Ok(ChatResponse {
        content: m["content"].as_str().unwrap_or_default().to_string(),
        tool_calls,
        prompt_tokens: v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        completion_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cost: 0.0,
    })
}

/// Tool calls without an id get one (the tool's answer must name its call).
fn name_calls(calls: &mut [ToolCall]) {
    for (i, c) in calls.iter_mut().enumerate() {
        if c.id.is_empty() {
            c.id = format!("call_{i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_messages_keep_the_protocol_shape() {
        let v = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3}});
        let r = parse_answer(&v).unwrap();
        assert_eq!(r.tool_calls[0].name, "get_weather");
        assert_eq!((r.prompt_tokens, r.completion_tokens), (12, 3));
        let m = Message {
            tool_calls: r.tool_calls.clone(),
            ..Message::new("assistant", "")
        };
        let j = message_json(&m);
        assert_eq!(j["content"], Value::Null);
        assert_eq!(j["tool_calls"][0]["function"]["name"], "get_weather");
        let t = Message {
            tool_call_id: Some("c1".into()),
            ..Message::new("tool", "{}")
        };
        assert_eq!(message_json(&t)["tool_call_id"], "c1");
        assert!(parse_answer(&json!({"choices": []})).is_err());
    }
}
