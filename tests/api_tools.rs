//! The API and dashboard under outside tools, against a live worker process and real Redis:
//! schemathesis (PyPI) fuzzes every operation of `/api/v1/openapi.json` (no 5xx, every status,
//! content type and body as documented), and headless Chromium (Debian `chromium`, driven by
//! playwright-core from npm: tests/browser/dashboard.mjs) walks the dashboard, saving a
//! screenshot of each page. `scripts/test.sh` installs both and exports their paths.
#[path = "common/api.rs"]
mod api_kit;
mod common;

use api_kit::{key, spawn_api, tmpdir};
use chatter_worker::jobs::JobBuilder;
use chatter_worker::queue::{QueueOptions, RedisQueue};
use common::wait_until;
use std::path::PathBuf;
use std::time::Duration;

fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test.sh, which installs the tool")
    })
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_off_the_schema() {
    let prefix = format!("st-{}", ulid::Ulid::new());
    let api = spawn_api(&prefix, &tmpdir("schemathesis")).await;
    let out = tokio::process::Command::new(root().join("scripts/schemathesis.sh"))
        .arg(&api.base)
        .arg(key("admin"))
        .env("SCHEMATHESIS", tool("SCHEMATHESIS"))
        .output()
        .await
        .expect("run scripts/schemathesis.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_in_headless_chromium_pause_and_replay() {
    let prefix = format!("dash-{}", ulid::Ulid::new());
    let api = spawn_api(&prefix, &tmpdir("dashboard")).await;
    let conn = chatter_worker::queue::connect(&common::redis_url())
        .await
        .unwrap();
    let q = RedisQueue::new(conn, &prefix, "maintenance", QueueOptions::default());
    // A job that dies at once, then the queue paused: a replayed job stays ready (pending).
    let job = JobBuilder::new("sleep", "maintenance")
        .arguments(serde_json::json!({"ms": 1, "fatal": true}))
        .max_retries(0)
        .owner("u1")
        .build();
    q.enqueue(&job).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "the job to be dead-lettered",
        || async { q.field(&job.id, "status").await.unwrap().as_deref() == Some("failed") },
    )
    .await;
    q.pause().await.unwrap();
    let shots = root().join("target/screenshots/dashboard");
    let _ = std::fs::remove_dir_all(&shots);
    let dir = PathBuf::from(tool("CW_BROWSER_DIR"));
    let out = tokio::process::Command::new("node")
        .arg(dir.join("dashboard.mjs"))
        .current_dir(&dir)
        .env("BASE_URL", &api.base)
        .env("TOKEN", key("admin"))
        .env("OUT", &shots)
        .env("PAUSED_QUEUE", "maintenance")
        .env("DEAD_QUEUE", "maintenance")
        .env("DEAD_JOB_ID", &job.id)
        .env("CHROMIUM", tool("CHROMIUM"))
        .output()
        .await
        .expect("run node tests/browser/dashboard.mjs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the dashboard run failed:\n{text}");
    // Replayed from the page: back in the ready list, pending, with a fresh attempt count.
    assert_eq!(
        q.field(&job.id, "status").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(q.stats().await.unwrap().ready, 1);
    for page in ["login", "queues", "jobs", "dead", "job", "workers"] {
        let f = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "no screenshot {}", f.display());
    }
}
