//! Every metric has HELP. One worker process embeds a document against the local OpenAI-compatible
//! server, runs a workflow against the local chat server and fires an every-second cron
//! schedule; once the embedding, workflow and cron series are all in its `/metrics` (asserted, so
//! the check cannot pass on a scrape without them), the scrape must pass `promtool check metrics`
//! and every `# TYPE` must have its `# HELP`. Also: every metric name recorded anywhere in the
//! sources is in `metrics::CATALOGUE`, which `/metrics` describes.
#[path = "common/mod.rs"]
mod common;
#[path = "common/docs.rs"]
mod docs;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use chatter_worker::bench::chat_server::ChatServer;
use chatter_worker::jobs::kinds::workflows::{RunWorkflowArgs, run_job};
use common::{WorkerProcess, wait_until};
use docs::{LIMIT, doc_kit, prose};
use fake_openai::FakeOpenAi;
use serde_json::json;
use std::io::Write;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_passes_once_embedding_workflow_and_cron_metrics_have_appeared() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let chat = ChatServer::start(true).await.unwrap();
    let cfg = k.root.join("worker.toml");
    std::fs::write(
        &cfg,
        format!(
            "[embedding]\nprovider = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-test\"\n\
             model = \"fake-embedding-model\"\ndimensions = 16\n\
             [workflows]\nbase_url = \"{}\"\napi_key = \"sk-test\"\nallow_networks = [\"127.0.0.0/8\"]\n",
            fake.base_url, chat.base_url
        ),
    )
    .unwrap();
    let schedules = k.root.join("schedules.toml");
    std::fs::write(
        &schedules,
        "[[schedule]]\nname = \"every\"\ncron = \"* * * * * *\"\nkind = \"ping\"\ncatch_up = \"skip\"\n",
    )
    .unwrap();
    let w = WorkerProcess::spawn(
        &k.h.url,
        &k.h.prefix,
        "chunking,embedding,workflows,maintenance",
        &[
            "--database-url",
            &k.url,
            "--storage-root",
            &k.root.to_string_lossy(),
            "--config",
            &cfg.to_string_lossy(),
            "--schedules",
            &schedules.to_string_lossy(),
        ],
    );

    // Embedding: a document chunked and embedded by the provider.
    let path = k.file("doc.txt", prose(12).as_bytes());
    let doc = k.ingest(&path, Some(24), Some(0)).await;
    assert_eq!(doc.status, "processed", "{:?}", doc.error);
    // A workflow run through the chat server.
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/library/plain_chat.json");
    let definition: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(library).unwrap()).unwrap();
    let job = run_job(&RunWorkflowArgs {
        definition: Some(definition),
        definition_id: None,
        inputs: json!({"message": "hi", "conversation_id": "c"}),
        owner: "owner-1".into(),
        execution_id: None,
    })
    .build();
    let q = k.h.queue("workflows");
    let id = q.enqueue(&job).await.unwrap().id;
    wait_until(LIMIT, "the workflow run to complete", || async {
        q.show(&id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == "completed")
    })
    .await;
    // Cron: the every-second schedule fires.
    wait_until(LIMIT, "a cron fire in /metrics", || async {
        w.get("/metrics").await.contains("chatter_cron_fires_total")
    })
    .await;

    let body = w.get("/metrics").await;
    for series in [
        "chatter_embedding_cache_requests_total{",
        "chatter_embedding_requests_total{",
        "chatter_embedding_request_duration_seconds_bucket{",
        "chatter_embedding_inputs_total{",
        "chatter_workflow_runs_total{",
        "chatter_workflow_node_duration_seconds_bucket{",
        "chatter_llm_request_duration_seconds_bucket{",
        "chatter_cron_fires_total{",
        "chatter_cron_lag_seconds_bucket{",
        "chatter_cron_next_fire_timestamp_seconds{",
        "chatter_jobs_finished_total{",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(series)),
            "{series} missing from the scrape:\n{body}"
        );
    }
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    let file = std::env::temp_dir().join(format!("cw-metrics-{}.txt", ulid::Ulid::new()));
    std::fs::File::create(&file)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {promtool}: {e} (scripts/test.sh installs it)"));
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "promtool check metrics passed on {} series lines",
        body.lines().filter(|l| !l.starts_with('#')).count()
    );
}

/// Metric names recorded with a literal name (`counter!("chatter_…"`, also across a line break)
/// in every `.rs` file under `dir`.
fn recorded(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            recorded(&p, out);
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (at, _) in text.match_indices("\"chatter_") {
            let before = text[..at].trim_end();
            let Some(call) = before.strip_suffix("!(") else {
                continue;
            };
            if !["counter", "gauge", "histogram"]
                .iter()
                .any(|m| call.ends_with(m))
            {
                continue;
            }
            let name: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((name, p.display().to_string()));
        }
    }
}

#[test]
fn every_metric_recorded_in_the_sources_is_described() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in ["src", "jobs/src", "workflows/src"] {
        recorded(&root.join(dir), &mut found);
    }
    let described: Vec<&str> = chatter_worker::metrics::CATALOGUE
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    assert!(
        found.len() >= 15,
        "the scan found too few metrics: {found:?}"
    );
    for (name, file) in &found {
        assert!(
            described.contains(&name.as_str()),
            "{name} (recorded in {file}) is not in metrics::CATALOGUE"
        );
    }
}
