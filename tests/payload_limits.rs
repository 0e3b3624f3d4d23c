//! Job limits where every producer's jobs pass (issue 16): a user's oversized payload is refused
//! through the API (single, batch, the workflow convenience, a body over the route's limit), the
//! CLI (`enqueue`, `workflows run`) and the library (`enqueue`, `enqueue_batch`), each naming the
//! field, the limit and the actual size, with nothing stored; under-limit payloads still pass; a
//! per-kind override works; the serving worker's RSS is read before and after the oversized
//! attempts and printed (a generous bound only). Also: `schedule_at` beyond the horizon, an empty
//! `name`, and 403 before 422 for a kind the caller may not enqueue.
#[path = "common/api.rs"]
mod api_kit;
mod common;

use chatter_worker::jobs::{JobBuilder, LimitError};
use chatter_worker::queue::QueueError;
use common::{free_port, redis_url, setup, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const MB: u64 = 1 << 20;

fn key(name: &str) -> String {
    format!("cwk_limits_{name}")
}

struct Api {
    child: tokio::process::Child,
    base: String,
    config: std::path::PathBuf,
    prefix: String,
    http: reqwest::Client,
}

/// A `run` process serving the API and working `maintenance`, with keys for `admin` and `u1`
/// and `ping` allowed 3 MB of metadata (`[limits.kinds.ping]`); the other limits are defaults.
async fn spawn(prefix: &str) -> Api {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cw-limits-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("worker.toml");
    let mut text = format!(
        "prefix = \"{prefix}\"\nhttp_addr = \"127.0.0.1:{port}\"\n\
         [limits.kinds.ping]\nmax_metadata_mb = 3\n\
         [api]\nmax_batch = 10\nuser_kinds = [\"run_workflow\", \"ping\", \"sleep\"]\n"
    );
    text += &api_kit::keys_toml(&[("admin", true), ("u1", false)], key);
    let child = api_kit::start_worker(&config, &text, port, "warn").await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    Api {
        child,
        base,
        config,
        prefix: prefix.to_string(),
        http,
    }
}

impl Api {
    async fn post(&self, who: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key(who))
            .json(body)
            .send()
            .await
            .unwrap();
        let st = r.status();
        if st.is_client_error() {
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            assert_eq!(ct, "application/problem+json", "{st}");
        }
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// `chatter-worker <args>` with this process's config and prefix: (success, stdout + stderr).
    async fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("REDIS_URL", redis_url())
            .env("CW_PREFIX", &self.prefix)
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn rss_kb(&self) -> u64 {
        let pid = self.child.id().expect("worker running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

/// `n` bytes of JSON array (strings of 16 characters).
fn blob(n: u64) -> Value {
    json!(vec!["0123456789abcdef"; (n / 19) as usize])
}

/// The problem's one field error: (field, message).
fn field_error(v: &Value) -> (String, String) {
    let e = &v["errors"][0];
    (
        e["field"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The message names the limit and the actual size.
fn names_sizes(message: &str, limit: u64) {
    assert!(
        message.contains(&format!("limit of {limit} bytes")) && message.contains(" bytes"),
        "{message}"
    );
}

/// A POST announcing `len` bytes of body with `Expect: 100-continue`, sending none: the answer's
/// status and body.
async fn announce(addr: &str, token: &str, len: u64) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("an answer without the body")
        .unwrap();
    common::parse_response(&buf)
}

async fn ready(q: &chatter_worker::queue::RedisQueue) -> u64 {
    let s = q.stats().await.unwrap();
    s.ready + s.scheduled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payloads_are_refused_by_every_producer_and_the_worker_stays_flat() {
    let h = setup().await;
    let api = spawn(&h.prefix).await;
    let workflows = h.queue("workflows");
    // Warm the process up with one accepted job of each route, then read its RSS.
    let small = json!({"function_name": "run_workflow",
                       "kwargs": {"definition_id": "d1", "inputs": {"items": blob(500_000)}}});
    let (st, v) = api.post("u1", "/api/v1/jobs", &small).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let rss_before = api.rss_kb();

    // API, one job: a 2 MB `kwargs.inputs` (the case, smaller).
    let big_inputs = json!({"function_name": "run_workflow",
                            "kwargs": {"definition_id": "d1", "inputs": {"items": blob(2 * MB)}}});
    let (st, v) = api.post("u1", "/api/v1/jobs", &big_inputs).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (field, message) = field_error(&v);
    assert_eq!(field, "kwargs.inputs", "{v}");
    names_sizes(&message, MB);
    // The workflow convenience route: the same check.
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/workflows/run",
            &json!({"definition_id": "d1", "inputs": {"items": blob(2 * MB)}}),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(field_error(&v).0, "kwargs.inputs", "{v}");
    // The 32 MB: refused by its announced length, before the body is read (the server
    // answers 413 without asking for the body: no `100 Continue`).
    let addr = api.base.trim_start_matches("http://").to_string();
    for _ in 0..5 {
        let (status, body) = announce(&addr, &key("u1"), 32 * MB).await;
        assert_eq!(status, 413, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let (field, message) = field_error(&v);
        assert_eq!(field, "body", "{v}");
        assert!(
            message.contains(&format!("is {} bytes", 32 * MB)),
            "{message}"
        );
    }
    // And sent whole, 32 MB five times: the server answers 413 or closes the connection
    // without reading the rest; either way it holds none of it.
    let huge = json!({"function_name": "run_workflow",
                      "kwargs": {"definition_id": "d1", "inputs": {"items": blob(32 * MB)}}})
    .to_string();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let r = api
            .http
            .post(format!("{}/api/v1/jobs", api.base))
            .bearer_auth(key("u1"))
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await;
        answers.push(match r {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
                "413".to_string()
            }
            Err(e) => format!("connection closed ({e})"),
        });
    }
    println!("32 MB bodies sent whole: {answers:?}");

    // API, batch: job 3 of 5 too large, nothing of the batch stored.
    let before = ready(&h.queue("maintenance")).await;
    let mut jobs: Vec<Value> = (0..5).map(|_| json!({"function_name": "ping"})).collect();
    jobs[3] = json!({"function_name": "ping", "kwargs": {"blob": blob(2 * MB)}});
    let (st, v) = api
        .post("u1", "/api/v1/jobs/batch", &json!({ "jobs": jobs }))
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (field, message) = field_error(&v);
    assert_eq!(field, "jobs[3].kwargs", "{v}");
    names_sizes(&message, MB);
    assert_eq!(ready(&h.queue("maintenance")).await, before);

    // CLI: `enqueue` over a limit lowered in the config file it reads, and `workflows run` with a
    // 2 MB definition under the default limits: refused, naming the field and sizes, exit != 0.
    let low = api.config.with_file_name("low.toml");
    std::fs::write(
        &low,
        std::fs::read_to_string(&api.config).unwrap()
            + "[limits]\nmax_kwargs_mb = 0.05\nmax_inputs_mb = 0.05\n",
    )
    .unwrap();
    let arg = json!({ "blob": blob(100_000) }).to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .arg("--config")
        .arg(&low)
        .args(["enqueue", "ping", "--args", &arg])
        .env("REDIS_URL", redis_url())
        .env("CW_PREFIX", &h.prefix)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("`kwargs` is") && err.contains("limit of 52428 bytes"),
        "{err}"
    );
    let def = api.config.with_file_name("big-workflow.json");
    std::fs::write(
        &def,
        json!({"name": "big", "nodes": [{"id": "start", "type": "start", "config": {"pad": blob(2 * MB)}},
                                         {"id": "end", "type": "end"}],
               "edges": [{"id": "e", "source": "start", "target": "end"}]})
        .to_string(),
    )
    .unwrap();
    let (ok, text) = api
        .cli(&["workflows", "run", def.to_str().unwrap(), "--owner", "u1"])
        .await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("`kwargs` is") && text.contains(&format!("limit of {MB} bytes")),
        "{text}"
    );

    // Library: a producer that skips the API gets a typed error; a bad job refuses its batch.
    let job = JobBuilder::new("run_workflow", "workflows")
        .arguments(json!({"definition_id": "d1", "owner": "u1", "inputs": {"items": blob(2 * MB)}}))
        .build();
    match workflows.enqueue(&job).await {
        Err(QueueError::Limit {
            index: 0,
            error:
                LimitError::TooLarge {
                    field: "kwargs.inputs",
                    limit,
                    actual,
                    ..
                },
            ..
        }) => assert!(limit == MB && actual > 2 * MB - 100, "{limit} {actual}"),
        other => panic!("expected a TooLarge on kwargs.inputs: {other:?}"),
    }
    let q = h.queue("maintenance");
    let before = ready(&q).await;
    let mut batch: Vec<_> = (0..4)
        .map(|_| JobBuilder::new("ping", "maintenance").build())
        .collect();
    batch[2].metadata.insert("m".into(), blob(2 * MB));
    let err = q.enqueue_batch(&batch).await.unwrap_err();
    assert!(
        matches!(&err, QueueError::Limit { index: 2, error, .. } if error.field() == "metadata"),
        "{err}"
    );
    assert!(err.to_string().contains("`metadata` is"), "{err}");
    assert_eq!(ready(&q).await, before, "nothing of the batch stored");
    assert_eq!(ready(&workflows).await, 1, "only the small workflow job");

    let rss_after = api.rss_kb();
    println!(
        "worker RSS: before the oversized attempts {rss_before} kB, after {rss_after} kB \
         (5 x 32 MB announced, 5 x 32 MB sent, 2 x 2 MB single, one 2 MB batch job, CLI and \
         library attempts)"
    );
    // Generous: the 32 MB bodies alone would be 160 MB if they were read.
    assert!(
        rss_after < rss_before + 100 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_limit_payloads_pass_and_a_kind_may_have_its_own_limits() {
    let h = setup().await;
    let api = spawn(&h.prefix).await;
    // Just under the defaults: 900 kB of kwargs, of args and of metadata together (job < 4 MB).
    let body = json!({"function_name": "ping", "args": blob(900_000),
                      "kwargs": {"k": blob(900_000)}, "metadata": {"m": blob(900_000)}});
    let (st, v) = api.post("u1", "/api/v1/jobs", &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // `[limits.kinds.ping] max_metadata_mb = 3`: 2 MB of metadata passes for ping, not for sleep.
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/jobs",
            &json!({"function_name": "ping", "metadata": {"m": blob(2 * MB)}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/jobs",
            &json!({"function_name": "sleep", "kwargs": {"ms": 1}, "metadata": {"m": blob(2 * MB)}}),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (field, message) = field_error(&v);
    assert_eq!(field, "metadata");
    names_sizes(&message, MB);
    assert!(message.contains("\"sleep\""), "{message}");
    // The library under the same configured limits (`Settings::queue_options`).
    let settings = chatter_worker::config::Settings::load(Some(api.config.as_path())).unwrap();
    let q = chatter_worker::queue::RedisQueue::new(
        h.conn.clone(),
        &h.prefix,
        "maintenance",
        settings.queue_options(),
    );
    let mut ping = JobBuilder::new("ping", "maintenance").build();
    ping.metadata.insert("m".into(), blob(2 * MB));
    q.enqueue(&ping).await.unwrap();
    let mut sleep = JobBuilder::new("sleep", "maintenance")
        .arguments(json!({"ms": 1}))
        .build();
    sleep.metadata = ping.metadata.clone();
    assert!(matches!(
        q.enqueue(&sleep).await,
        Err(QueueError::Limit { .. })
    ));
    // The jobs that passed run.
    wait_until(
        Duration::from_secs(30),
        "the accepted pings to run",
        || async { q.stats().await.unwrap().finished == 3 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_schedules_empty_names_and_forbidden_kinds_are_refused_naming_why() {
    let h = setup().await;
    let api = spawn(&h.prefix).await;
    let at = |days: i64| (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/jobs",
            &json!({"function_name": "ping", "schedule_at": at(400)}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (field, message) = field_error(&v);
    assert_eq!(field, "schedule_at");
    assert!(message.contains("horizon of 365.0 days"), "{message}");
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/jobs/batch",
            &json!({"jobs": [{"function_name": "ping"}, {"function_name": "ping", "schedule_at": at(400)}]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(field_error(&v).0, "jobs[1].schedule_at", "{v}");
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/jobs",
            &json!({"function_name": "ping", "schedule_at": at(300)}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (ok, text) = api.cli(&["enqueue", "ping", "--delay", "400days"]).await;
    assert!(
        !ok && text.contains("scheduling horizon of 365.0 days"),
        "{text}"
    );

    // An empty (or blank) name.
    for name in ["", "  "] {
        let (st, v) = api
            .post(
                "u1",
                "/api/v1/jobs",
                &json!({"function_name": "ping", "name": name}),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(field_error(&v).0, "name", "{v}");
    }
    let (ok, text) = api.cli(&["enqueue", "ping", "--name", ""]).await;
    assert!(!ok && text.contains("`name`"), "{text}");
    let bad = JobBuilder::new("ping", "maintenance").name("").build();
    assert!(matches!(
        h.queue("maintenance").enqueue(&bad).await,
        Err(QueueError::Invalid(e)) if e.field == "name"
    ));

    // A kind only admins may enqueue, with bad kwargs: the user gets 403, the admin 422.
    let body = json!({"function_name": "database_maintenance", "kwargs": {"x": 1}});
    let (st, v) = api.post("u1", "/api/v1/jobs", &body).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = api
        .post("u1", "/api/v1/jobs/batch", &json!({"jobs": [body.clone()]}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    // Also when it is too large: permission first.
    let (st, v) = api
        .post(
            "u1",
            "/api/v1/jobs",
            &json!({"function_name": "database_maintenance", "kwargs": {"x": blob(2 * MB)}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = api.post("admin", "/api/v1/jobs", &body).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(field_error(&v).0, "kwargs", "{v}");
}
