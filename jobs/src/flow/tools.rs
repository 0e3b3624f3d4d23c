//! HTTP tools declared in configuration (`[[workflows.tools]]`): a name, a description and a
//! JSON schema of the arguments (sent to the model as an OpenAI function tool), and the URL
//! that answers a call. Arguments are checked against the schema before any request; the URL
//! passes the SSRF guard of document fetching (no loopback, private, link-local… address
//! unless `allow_networks` lists it, checked on every address the name resolves to), and
//! redirects are not followed.
use crate::chunk::guard::Guard;
use crate::embed::openai::{chain, provider_message};
use chatter_workflows::engine::StepError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Called with the arguments as a JSON body (POST) or as query parameters (GET).
    pub url: String,
    #[serde(default = "post")]
    pub method: String,
    /// JSON schema of the arguments; default: any object.
    #[serde(default = "any_object")]
    pub parameters: Value,
    /// Longest a call may take; default: the tools node's `tool_timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn post() -> String {
    "POST".into()
}

fn any_object() -> Value {
    json!({"type": "object"})
}

struct Tool {
    spec: ToolSpec,
    url: url::Url,
    schema: jsonschema::Validator,
}

pub struct Tools {
    tools: HashMap<String, Tool>,
    http: reqwest::Client,
    guard: Guard,
}

impl Tools {
    /// Check every declaration: a unique name, an http(s) URL, GET or POST, a valid schema.
    pub fn new(specs: Vec<ToolSpec>, guard: Guard) -> Result<Self, String> {
        let mut tools = HashMap::new();
        for spec in specs {
            let at = format!("tool {:?}", spec.name);
            if spec.name.is_empty()
                || !spec
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!("{at}: name must be letters, digits, _ or -"));
            }
            let url = url::Url::parse(&spec.url).map_err(|e| format!("{at}: url: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("{at}: url {:?} is not http(s)", spec.url));
            }
            if !matches!(spec.method.as_str(), "GET" | "POST") {
                return Err(format!("{at}: method {:?} is not GET or POST", spec.method));
            }
            let schema = jsonschema::validator_for(&spec.parameters)
                .map_err(|e| format!("{at}: parameters is not a JSON schema: {e}"))?;
            if tools.contains_key(&spec.name) {
                return Err(format!("{at} is declared twice"));
            }
            tools.insert(spec.name.clone(), Tool { spec, url, schema });
        }
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(guard.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("chatter-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { tools, http, guard })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The OpenAI function tools for these names (what an llm node offers its model).
    pub fn schemas(&self, names: &[String]) -> Result<Vec<Value>, StepError> {
        names
            .iter()
            .map(|n| {
                let t = self.tools.get(n).ok_or_else(|| self.unknown(n))?;
                Ok(json!({"type": "function", "function": {
                    "name": t.spec.name,
                    "description": t.spec.description,
                    "parameters": t.spec.parameters,
                }}))
            })
            .collect()
    }

    fn unknown(&self, name: &str) -> StepError {
        let mut known: Vec<&str> = self.names().collect();
        known.sort();
        StepError::fatal(format!(
            "tool {name:?} is not configured; configured tools: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    }

    /// Call tool `name`: arguments checked, URL guarded, answer as JSON (or its text).
    pub async fn call(
        &self,
        name: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, StepError> {
        let started = Instant::now();
        let r = self.call_inner(name, args, timeout).await;
        let outcome = match &r {
            Ok(_) => "ok",
            Err(e) if e.retryable => "retryable_error",
            Err(_) => "error",
        };
        let tool = if self.tools.contains_key(name) {
            name.to_string()
        } else {
            "(unknown)".to_string()
        };
        metrics::counter!("chatter_workflow_tool_calls_total", "tool" => tool.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("chatter_workflow_tool_duration_seconds", "tool" => tool)
            .record(started.elapsed().as_secs_f64());
        r
    }

    async fn call_inner(
        &self,
        name: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, StepError> {
        let t = self.tools.get(name).ok_or_else(|| self.unknown(name))?;
        let problems: Vec<String> = t
            .schema
            .iter_errors(&args)
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(StepError::fatal(format!(
                "tool {name:?}: arguments do not match its schema: {}",
                problems.join("; ")
            )));
        }
        self.guard.check_url(&t.url).map_err(|why| {
            StepError::fatal(format!(
                "tool {name:?}: {} {}: {why}",
                t.spec.url,
                crate::chunk::guard::BLOCKED
            ))
        })?;
        let timeout = t.spec.timeout_ms.map_or(timeout, Duration::from_millis);
        let mut rb = if t.spec.method == "GET" {
            let mut url = t.url.clone();
            if let Value::Object(m) = &args {
                let mut q = url.query_pairs_mut();
                for (k, v) in m {
                    match v {
                        Value::String(s) => q.append_pair(k, s),
                        other => q.append_pair(k, &other.to_string()),
                    };
                }
            }
            self.http.get(url)
        } else {
            self.http.post(t.url.clone()).json(&args)
        };
        for (k, v) in &t.spec.headers {
            rb = rb.header(k, v);
        }
        let resp = rb.timeout(timeout).send().await.map_err(|e| {
            let text = chain(&e);
            if text.contains(crate::chunk::guard::BLOCKED) {
                StepError::fatal(format!("tool {name:?}: {text}"))
            } else if e.is_timeout() {
                StepError::retryable(format!("tool {name:?} timed out after {timeout:?}"))
            } else {
                StepError::retryable(format!("tool {name:?}: {text}"))
            }
        })?;
        let status = resp.status();
        let json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let bytes = resp.bytes().await.map_err(|e| {
            StepError::retryable(format!("tool {name:?}: reading the answer: {}", chain(&e)))
        })?;
        if status.is_redirection() {
            return Err(StepError::fatal(format!(
                "tool {name:?} answered a redirect ({}); redirects are not followed",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            let msg = format!(
                "tool {name:?} answered {}: {}",
                status.as_u16(),
                provider_message(&bytes)
            );
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                StepError::retryable(msg)
            } else {
                StepError::fatal(msg)
            });
        }
        Ok(if json {
            serde_json::from_slice(&bytes).map_err(|e| {
                StepError::fatal(format!("tool {name:?}: the answer is not JSON: {e}"))
            })?
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, url: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "d".into(),
            url: url.into(),
            method: "POST".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}),
            timeout_ms: None,
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn declarations_are_checked() {
        let bad = |s: ToolSpec| Tools::new(vec![s], Guard::default()).err().unwrap();
        assert!(bad(spec("a b", "http://x")).contains("name"));
        assert!(bad(spec("a", "ftp://x")).contains("not http"));
        let mut s = spec("a", "http://x");
        s.parameters = json!({"type": 12});
        assert!(bad(s).contains("parameters"));
        let e = Tools::new(
            vec![spec("a", "http://x"), spec("a", "http://y")],
            Guard::default(),
        )
        .err()
        .unwrap();
        assert!(e.contains("twice"), "{e}");
    }

    #[tokio::test]
    async fn arguments_are_checked_and_private_addresses_refused() {
        let tools = Tools::new(
            vec![
                spec("loopback", "http://127.0.0.1:9/x"),
                spec("metadata", "http://169.254.169.254/latest/meta-data"),
                spec("private", "http://10.1.2.3/x"),
            ],
            Guard::default(),
        )
        .unwrap();
        let t = Duration::from_secs(1);
        let e = tools
            .call("loopback", json!({"city": 3}), t)
            .await
            .unwrap_err();
        assert!(e.message.contains("/city") && !e.retryable, "{}", e.message);
        for name in ["loopback", "metadata", "private"] {
            let e = tools
                .call(name, json!({"city": "Oslo"}), t)
                .await
                .unwrap_err();
            assert!(
                e.message.contains(crate::chunk::guard::BLOCKED) && !e.retryable,
                "{name}: {}",
                e.message
            );
        }
        let e = tools.call("nope", json!({}), t).await.unwrap_err();
        assert!(
            e.message
                .contains("configured tools: loopback, metadata, private"),
            "{}",
            e.message
        );
        assert!(tools.schemas(&["nope".into()]).is_err());
        assert_eq!(
            tools.schemas(&["private".into()]).unwrap()[0]["function"]["name"],
            "private"
        );
    }
}
