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
    for (name, admin) in [("admin", true), ("u1", false), ("u2", false)] {
        let h = chatter_worker::api::auth::hash_key(&key(name));
        text += &format!(
            "[[api.keys]]\nname = \"{name}\"\nsha256 = \"{h}\"\nuser = \"{name}\"\nadmin = {admin}\n"
        );
    }
    std::fs::write(&cfg, text).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--queues", "maintenance"])
        .env("REDIS_URL", redis_url())
        .env_remove("DATABASE_URL")
        .env("CW_NO_SCHEDULER", "true")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chatter-worker");
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    wait_until(Duration::from_secs(20), "the API to answer", || {
        let c = c.clone();
        // /healthz answers before Redis does (and the API with 503): wait until ready.
        let url = format!("{base}/readyz");
        async move { c.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    Api { child, base }
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
