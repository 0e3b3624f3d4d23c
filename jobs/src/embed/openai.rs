//! The OpenAI-compatible embeddings API (`POST {base_url}/embeddings`), which OpenAI, Azure
//! OpenAI, vLLM, TEI and Ollama all speak. One call is one request: retries, waits and rate
//! limits are the caller's ([`super::Embedder`]), so every try is counted and limited alike.
use super::provider::{Provider, ProviderError, RequestLimits, Space, normalize};
use crate::chunk::tokenizer::Tokenizer;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1` (the `/embeddings` path is appended).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// The vector size: sent as `dimensions` when `send_dimensions` (OpenAI's v3 models shorten
    /// on request), and checked on every answer.
    pub dimensions: usize,
    pub send_dimensions: bool,
    pub limits: RequestLimits,
    pub timeout: Duration,
}

pub struct OpenAi {
    config: OpenAiConfig,
    url: String,
    space: Space,
    http: reqwest::Client,
    tokenizer: Tokenizer,
}

impl OpenAi {
    pub fn new(config: OpenAiConfig) -> Result<Self, String> {
        let (url, http) = endpoint(&config.base_url, "embeddings", config.timeout)?;
        if config.dimensions == 0 {
            return Err("dimensions must be at least 1".into());
        }
        Ok(Self {
            url,
            space: Space {
                provider: "openai".into(),
                model: config.model.clone(),
                dimensions: config.dimensions,
            },
            http,
            tokenizer: Tokenizer::cl100k(),
            config,
        })
    }

    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        let mut body = json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        if self.config.send_dimensions {
            body["dimensions"] = json!(self.config.dimensions);
        }
        let mut req = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| {
            ProviderError::retryable(format!("embedding request to {}: {}", self.url, chain(&e)))
        })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| {
            ProviderError::retryable(format!("embedding answer from {}: {}", self.url, chain(&e)))
        })?;
        if !status.is_success() {
            let message = format!(
                "embedding provider answered {status}: {}",
                provider_message(&bytes)
            );
            return Err(
                if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
                    ProviderError::Retryable {
                        message,
                        retry_after,
                    }
                } else {
                    ProviderError::Final(message)
                },
            );
        }
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::retryable(format!("embedding provider sent an unreadable answer: {e}"))
        })?;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for d in answer.data {
            let slot = out.get_mut(d.index).ok_or_else(|| {
                ProviderError::Final(format!(
                    "embedding provider answered index {} for {} inputs",
                    d.index,
                    texts.len()
                ))
            })?;
            if d.embedding.len() != self.config.dimensions {
                return Err(ProviderError::Final(format!(
                    "model {} answered {} dimensions; configured {}",
                    self.config.model,
                    d.embedding.len(),
                    self.config.dimensions
                )));
            }
            let mut v = d.embedding;
            normalize(&mut v);
            *slot = Some(v);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    ProviderError::retryable(format!("embedding provider left out input {i}"))
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

impl Provider for OpenAi {
    fn space(&self) -> &Space {
        &self.space
    }

    fn limits(&self) -> RequestLimits {
        self.config.limits
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, ProviderError>> {
        Box::pin(self.call(texts))
    }

    fn limit_key(&self) -> String {
        // The account is the endpoint and its key; the key itself never leaves the process.
        let mut h = Sha256::new();
        h.update(self.config.base_url.trim_end_matches('/').as_bytes());
        h.update([0]);
        h.update(self.config.api_key.as_deref().unwrap_or("").as_bytes());
        format!("openai:{}", &hex::encode(h.finalize())[..16])
    }
}

/// An OpenAI-compatible API's `{base_url}/{path}` (the base checked: http or https) and a
/// client whose requests end after `timeout`.
pub(crate) fn endpoint(
    base_url: &str,
    path: &str,
    timeout: Duration,
) -> Result<(String, reqwest::Client), String> {
    let base = base_url.trim_end_matches('/');
    let parsed = url::Url::parse(base).map_err(|e| format!("base_url {base:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("base_url {base:?}: not http(s)"));
    }
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| e.to_string())?;
    Ok((format!("{base}/{path}"), http))
}

/// `Retry-After` (seconds or an HTTP date) or `retry-after-ms`, as a wait from now.
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| h.get(name)?.to_str().ok().map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The provider's own error message (`{"error": {"message": ...}}`), else the body's start.
pub(crate) fn provider_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| {
            let e = v.get("error")?;
            e.get("message")
                .and_then(|m| m.as_str())
                .or_else(|| e.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let mut msg: String = msg.chars().take(500).collect();
    if msg.is_empty() {
        msg = "(no message)".into();
    }
    msg
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_ms_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = reqwest::header::HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert("retry-after", later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn messages_come_from_the_error_object() {
        assert_eq!(
            provider_message(br#"{"error": {"message": "bad input", "type": "x"}}"#),
            "bad input"
        );
        assert_eq!(provider_message(b"  plain  "), "plain");
        assert_eq!(provider_message(b""), "(no message)");
    }
}
