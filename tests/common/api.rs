//! A worker process serving the HTTP API, with API keys for `admin`, `u1` and `u2` and a JWT
//! secret; shared by the API, dashboard and schemathesis tests.
#![allow(dead_code)]

use super::common::{free_port, redis_url, wait_until};
use serde_json::json;
use std::time::Duration;

pub const SECRET: &str = "test-secret-of-at-least-32-bytes";

pub struct Api {
    pub child: tokio::process::Child,
    pub base: String,
}

pub fn key(name: &str) -> String {
    format!("cwk_test_{name}")
}

/// A `run` process serving the API (maintenance queue), keys for admin, u1 and u2.
pub async fn spawn_api(prefix: &str, dir: &std::path::Path) -> Api {
    spawn(prefix, dir, None).await
}

/// The same with the API on its own port (`[api] addr`); `base` is the API's, `metrics` the
/// address of /metrics.
pub async fn spawn_api_on_own_port(prefix: &str, dir: &std::path::Path) -> (Api, String) {
    let port = free_port();
    let api = spawn(prefix, dir, Some(port)).await;
    let metrics = api.base.clone();
    (
        Api {
            child: api.child,
            base: format!("http://127.0.0.1:{port}"),
        },
        metrics,
    )
}

async fn spawn(prefix: &str, dir: &std::path::Path, api_port: Option<u16>) -> Api {
    let port = free_port();
    let cfg = dir.join(format!("api-{port}.toml"));
    let addr = api_port
        .map(|p| format!("addr = \"127.0.0.1:{p}\"\n"))
        .unwrap_or_default();
    let mut text = format!(
        "prefix = \"{prefix}\"\nhttp_addr = \"127.0.0.1:{port}\"\n[api]\n{addr}jwt_secret = \"{SECRET}\"\nmax_batch = 5\nkeepalive_secs = 1\nuser_kinds = [\"chunk_document\", \"run_workflow\", \"ping\", \"sleep\"]\n"
    );
    text += &keys_toml(&[("admin", true), ("u1", false), ("u2", false)], key);
    let child = start_worker(&cfg, &text, port, "warn").await;
    Api {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// `[[api.keys]]` entries for `users` (name, admin), each with the key `key_of(name)`.
pub fn keys_toml(users: &[(&str, bool)], key_of: impl Fn(&str) -> String) -> String {
    users
        .iter()
        .map(|(name, admin)| {
            let h = chatter_worker::api::auth::hash_key(&key_of(name));
            format!(
                "[[api.keys]]\nname = \"{name}\"\nsha256 = \"{h}\"\nuser = \"{name}\"\nadmin = {admin}\n"
            )
        })
        .collect()
}

/// Write `text` to `cfg` and start `chatter-worker --config cfg run --queues maintenance`
/// (its `http_addr` on `port`); returns once `/readyz` is 200 (`/healthz` answers before Redis
/// does, and the API with 503 until then).
pub async fn start_worker(
    cfg: &std::path::Path,
    text: &str,
    port: u16,
    log: &str,
) -> tokio::process::Child {
    std::fs::write(cfg, text).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .arg("--config")
        .arg(cfg)
        .args(["run", "--queues", "maintenance"])
        .env("REDIS_URL", redis_url())
        .env_remove("DATABASE_URL")
        .env("CW_NO_SCHEDULER", "true")
        .env("RUST_LOG", log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chatter-worker");
    let c = reqwest::Client::new();
    wait_until(Duration::from_secs(20), "the API to answer", || {
        let url = format!("http://127.0.0.1:{port}/readyz");
        let c = c.clone();
        async move { c.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    child
}

pub fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cw-api-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn jwt(sub: &str, exp_in: i64, secret: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_in;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
