//! A local HTTP server speaking the OpenAI chat completions protocol (plain and streamed), the
//! stand-in for a third-party LLM provider in `bench workflows` (answering at once) and in the
//! tests (scripted: tool calls, slow streams, hangs, error statuses). It also serves a demo tool
//! (`POST /tools/get_weather`) and a retrieval service (`POST /retrieve`), and records every
//! request it saw.
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Reply {
    /// This text (streamed word by word when the request streams).
    Text(String),
    /// Tool calls: (name, arguments).
    Tools(Vec<(String, Value)>),
    /// A stream of `tokens` words, one every `gap`.
    Slow { tokens: usize, gap: Duration },
    /// This status with an OpenAI error body.
    Status(u16),
    /// Wait this long, then answer with the default reply.
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub body: Value,
}

impl Seen {
    /// The text of the last user message.
    pub fn last_user(&self) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Default)]
pub struct Inner {
    pub seen: Mutex<Vec<Seen>>,
    /// Replies used in order; when empty, `rules` then the default answer.
    pub script: Mutex<VecDeque<Reply>>,
    /// (text, reply): a request any of whose messages contains `text` gets `reply` (kept).
    pub rules: Mutex<Vec<(String, Reply)>>,
    pub tool_calls: Mutex<Vec<Value>>,
    pub retrievals: Mutex<Vec<Value>>,
    /// Record requests (off in the benchmark).
    pub record: bool,
    ids: AtomicU64,
}

#[derive(Clone)]
pub struct ChatServer {
    /// e.g. `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    /// e.g. `http://127.0.0.1:PORT`
    pub root: String,
    pub inner: Arc<Inner>,
}

impl ChatServer {
    /// Start on a free loopback port; `record` keeps every request.
    pub async fn start(record: bool) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            record,
            ..Inner::default()
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(chat))
            .route("/tools/get_weather", axum::routing::post(weather))
            .route("/retrieve", axum::routing::post(retrieve))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url: format!("http://{addr}/v1"),
            root: format!("http://{addr}"),
            inner,
        })
    }

    pub fn push(&self, r: Reply) {
        self.inner.script.lock().unwrap().push_back(r);
    }

    pub fn rule(&self, text: &str, r: Reply) {
        self.inner.rules.lock().unwrap().push((text.into(), r));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }
}

fn pick(inner: &Inner, body: &Value) -> Option<Reply> {
    if let Some(r) = inner.script.lock().unwrap().pop_front() {
        return Some(r);
    }
    let text = body["messages"].to_string();
    inner
        .rules
        .lock()
        .unwrap()
        .iter()
        .find(|(t, _)| text.contains(t.as_str()))
        .map(|(_, r)| r.clone())
}

async fn chat(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    if inner.record {
        inner.seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            body: body.clone(),
        });
    }
    let n = inner.ids.fetch_add(1, Ordering::Relaxed);
    let id = format!("chatcmpl-{n}");
    let stream = body["stream"].as_bool().unwrap_or(false);
    let model = body["model"].as_str().unwrap_or("fake").to_string();
    let default = || {
        let last = Seen {
            at: Instant::now(),
            body: body.clone(),
        }
        .last_user();
        Reply::Text(format!(
            "echo: {}",
            last.chars().take(200).collect::<String>()
        ))
    };
    let mut reply = pick(&inner, &body).unwrap_or_else(default);
    if let Reply::Hang(d) = reply {
        tokio::time::sleep(d).await;
        reply = default();
    }
    match reply {
        Reply::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({"error": {"message": format!("scripted {code}"), "type": "test"}})),
        )
            .into_response(),
        Reply::Text(t) if !stream => Json(json!({
            "id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": t},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": t.split_whitespace().count(),
                      "total_tokens": 10 + t.split_whitespace().count()},
        }))
        .into_response(),
        Reply::Tools(calls) if !stream => Json(json!({
            "id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": calls.iter().enumerate().map(|(i, (name, args))| json!({
                    "id": format!("call_{n}_{i}"), "type": "function",
                    "function": {"name": name, "arguments": args.to_string()}})).collect::<Vec<_>>()},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }))
        .into_response(),
        other => sse(id, model, n, other),
    }
}

/// A streamed answer: content deltas (or tool call deltas), then usage, then `[DONE]`.
fn sse(id: String, model: String, n: u64, reply: Reply) -> Response {
    let chunk = |delta: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    };
    let mut frames: Vec<(Duration, Value)> = Vec::new();
    let mut completion = 0;
    match &reply {
        Reply::Text(t) => {
            for (i, w) in t.split_inclusive(' ').enumerate() {
                let mut d = json!({"content": w});
                if i == 0 {
                    d["role"] = json!("assistant");
                }
                frames.push((Duration::ZERO, chunk(d)));
                completion += 1;
            }
        }
        Reply::Slow { tokens, gap } => {
            for i in 0..*tokens {
                frames.push((*gap, chunk(json!({"content": format!("t{i} ")}))));
                completion += 1;
            }
        }
        Reply::Tools(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                let text = args.to_string();
                let mut mid = text.len() / 2;
                while !text.is_char_boundary(mid) {
                    mid -= 1;
                }
                let (a, b) = text.split_at(mid);
                frames.push((
                    Duration::ZERO,
                    chunk(json!({"tool_calls": [{"index": i,
                    "id": format!("call_{n}_{i}"), "type": "function",
                    "function": {"name": name, "arguments": a}}]})),
                ));
                frames.push((
                    Duration::ZERO,
                    chunk(json!({"tool_calls": [{"index": i,
                    "function": {"arguments": b}}]})),
                ));
            }
            completion = 5;
        }
        _ => {}
    }
    frames.push((
        Duration::ZERO,
        json!({"id": id, "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 10, "completion_tokens": completion,
                         "total_tokens": 10 + completion}}),
    ));
    let stream =
        futures::stream::unfold((frames.into_iter(), false), |(mut it, done)| async move {
            if done {
                return None;
            }
            match it.next() {
                Some((gap, v)) => {
                    if !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    Some((
                        Ok::<_, std::io::Error>(format!("data: {v}\n\n")),
                        (it, false),
                    ))
                }
                None => Some((Ok("data: [DONE]\n\n".to_string()), (it, true))),
            }
        });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn weather(State(inner): State<Arc<Inner>>, Json(args): Json<Value>) -> Json<Value> {
    if inner.record {
        inner.tool_calls.lock().unwrap().push(args.clone());
    }
    Json(json!({"city": args["city"], "temperature_c": 4, "sky": "overcast"}))
}

async fn retrieve(State(inner): State<Arc<Inner>>, Json(req): Json<Value>) -> Json<Value> {
    if inner.record {
        inner.retrievals.lock().unwrap().push(req.clone());
    }
    let limit = req["limit"].as_u64().unwrap_or(3).min(3);
    Json(json!({"results": (0..limit).map(|i| json!({
        "document_id": "doc-ext", "chunk_id": format!("ext-{i}"),
        "content": format!("external passage {i} about {}", req["query"].as_str().unwrap_or("")),
        "score": 1.0 - i as f64 / 10.0,
    })).collect::<Vec<_>>()}))
}
