//! A local HTTP server speaking the OpenAI embeddings protocol (`POST /v1/embeddings`), standing
//! in for the third-party provider: it records every request it saw (when, how many inputs, the
//! inputs) and answers from a script (status codes, Retry-After, hangs), else with
//! deterministic vectors derived from each input's text.
#![allow(dead_code)]

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Reply {
    /// Vectors for every input.
    Ok,
    /// This status with this body, and a Retry-After header when given.
    Status(u16, Option<String>, Value),
    /// Sleep this long, then answer normally.
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub inputs: Vec<String>,
    pub status: u16,
    pub authorization: Option<String>,
}

pub struct Inner {
    pub seen: Mutex<Vec<Seen>>,
    pub script: Mutex<VecDeque<Reply>>,
    pub dims: usize,
    /// Added to every answer (a slow provider).
    pub delay: Mutex<Duration>,
}

#[derive(Clone)]
pub struct FakeOpenAi {
    /// e.g. `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    pub inner: Arc<Inner>,
}

/// The vector the server answers for `text`: a fixed function of it, unit length.
pub fn vector_of(text: &str, dims: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(dims);
    let mut block = Sha256::digest(text.as_bytes());
    while v.len() < dims {
        for b in block.iter() {
            if v.len() < dims {
                v.push(*b as f32 - 127.5);
            }
        }
        block = Sha256::digest(block);
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

async fn embeddings(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let inputs: Vec<String> = match &body["input"] {
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    let reply = inner
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Ok);
    let status = match &reply {
        Reply::Status(code, _, _) => *code,
        _ => 200,
    };
    inner.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        inputs: inputs.clone(),
        status,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let delay = *inner.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match reply {
        Reply::Status(code, retry_after, body) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), Json(body)).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            r
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            ok(&inputs, inner.dims)
        }
        Reply::Ok => ok(&inputs, inner.dims),
    }
}

fn ok(inputs: &[String], dims: usize) -> Response {
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_of(t, dims)}))
        .collect();
    Json(json!({"object": "list", "data": data, "model": "fake", "usage": {"prompt_tokens": 0, "total_tokens": 0}}))
        .into_response()
}

impl FakeOpenAi {
    pub async fn start(dims: usize) -> Self {
        let inner = Arc::new(Inner {
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            dims,
            delay: Mutex::new(Duration::ZERO),
        });
        let app = axum::Router::new()
            .route("/v1/embeddings", axum::routing::post(embeddings))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            inner,
        }
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().unwrap().extend(replies);
    }

    pub fn set_delay(&self, d: Duration) {
        *self.inner.delay.lock().unwrap() = d;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.inner.seen.lock().unwrap().len()
    }

    /// The most requests seen inside any window of `window` (arrival times).
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut at: Vec<Instant> = self.seen().iter().map(|s| s.at).collect();
        at.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..at.len() {
            while at[hi].duration_since(at[lo]) >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}
