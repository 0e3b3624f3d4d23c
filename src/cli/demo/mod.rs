//! `demo`: the whole thing in the current folder, with no services and no settings. It fetches
//! the local model once (`cli/model.rs`), runs the worker embedded in `./chatter-worker.db` (queue
//! and store in one SQLite file) with the API and dashboard on a loopback port and a fresh admin
//! API key, ingests the project's own docs (built into the binary, written under
//! `./chatter-worker-demo/`), follows them with progress bars until each is processed, searches
//! them, runs a retrieval workflow (no LLM: its output is the passages found), prints where the
//! dashboard is, and serves until Ctrl-C (`--exit-after-ready`: shuts down instead).
//!
//! Its lines on stdout are stable, for people and scripts: `model: DIR`, `ingest: ...`,
//! `search: N passages for "..."`, `workflow: STATUS`, `dashboard: URL`, `api key: KEY`.
mod docs;
mod follow;

use super::context::{backend, queue_handle, submit_one};
use super::model::ensure_model;
use crate::cli::DemoArgs;
use crate::config::{ApiKeySettings, Settings};
use crate::handlers;
use crate::ingest::{self, IngestOptions};
use crate::jobs::Registry;
use crate::jobs::registry::queues;
use crate::runtime;
use anyhow::{Context, bail};
use chatter_jobs::kinds::workflows::{RunWorkflowArgs, run_job};
use chatter_jobs::store::DocumentStatus;
use indicatif::MultiProgress;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// The question the demo asks of the docs.
pub const QUESTION: &str = "how are retries scheduled";
/// The demo's documents' owner (and the API key's user).
const OWNER: &str = "demo";
/// Passages shown (search) and retrieved (workflow).
const TOP: usize = 3;
/// The SQLite file, in the current folder.
const DB: &str = "chatter-worker.db";
/// Where the docs are written for the chunking jobs to read.
const STORAGE: &str = "chatter-worker-demo";
/// Longest the demo waits for the runtime to be ready, and for the docs to be processed.
const READY_LIMIT: Duration = Duration::from_secs(300);
const INGEST_LIMIT: Duration = Duration::from_secs(1800);

pub async fn run(s: Settings, registry: Registry, a: DemoArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let progress = MultiProgress::new();
    let model = ensure_model(s.embedding.model_dir.as_deref(), &progress).await?;
    println!("model: {}", model.display());
    let port = free_port(a.port)?;
    let key = crate::api::auth::new_key();
    let s = embedded_settings(s, &cwd, &model, port, &key);

    let shutdown = runtime::shutdown_on_signals();
    let mut worker = tokio::spawn(runtime::run(s.clone(), registry.clone(), shutdown.clone()));
    let base = format!("http://127.0.0.1:{port}");
    tokio::select! {
        r = ready(&base) => r?,
        r = &mut worker => bail!("the worker stopped while starting: {}", ended(r)),
        _ = shutdown.cancelled() => return Ok(()),
    }

    let store = handlers::store(&s).await?;
    let documents = store.documents();
    let chunking = queue_handle(&s, queues::CHUNKING).await?;
    let options = IngestOptions {
        paths: docs::write(&cwd.join(STORAGE))?,
        owner: OWNER.into(),
        storage_root: cwd.clone(),
        wait: None,
        progress: false,
    };
    let embedding = queue_handle(&s, queues::EMBEDDING).await?;
    let started = Instant::now();
    let since_ms = now_ms().saturating_sub(1000);
    let ingested = ingest::ingest(&options, &*documents, chunking.as_ref()).await?;
    let watched = follow::Queues {
        chunking: chunking.as_ref(),
        embedding: embedding.as_ref(),
        owner: OWNER,
    };
    let followed = tokio::select! {
        r = follow::follow(&ingested, &*documents, watched, since_ms, &progress, INGEST_LIMIT) => r?,
        r = &mut worker => bail!("the worker stopped while ingesting: {}", ended(r)),
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut failed = 0;
    for f in followed
        .iter()
        .filter(|f| f.status != Some(DocumentStatus::Processed))
    {
        failed += 1;
        let status = f.status.map_or("not registered", DocumentStatus::as_str);
        let error = f.error.as_deref().unwrap_or("not processed in time");
        println!("ingest: {} {status}: {error}", f.path);
    }
    if failed > 0 {
        bail!(
            "{failed} of {} documents were not processed",
            followed.len()
        );
    }
    let chunks: u64 = followed.iter().map(|f| f.chunks).sum();
    let new: u64 = followed
        .iter()
        .filter(|f| !f.done_before)
        .map(|f| f.chunks)
        .sum();
    println!(
        "documents: {} processed, {chunks} chunks ({} processed by an earlier run)",
        followed.len(),
        followed.iter().filter(|f| f.done_before).count()
    );

    // The search the `search` command runs.
    let embedder = handlers::embedder(&s, &store, backend(&s).await?)
        .await?
        .context("the demo's settings have no embedding provider")?;
    let hits = embedder
        .search(QUESTION, TOP, Some(OWNER), None)
        .await
        .map_err(|e| anyhow::anyhow!("search: {e}"))?;
    let path_of = |id: &str| {
        ingested
            .iter()
            .find(|i| i.document_id == id)
            .map_or(id.to_string(), |i| i.path.clone())
    };
    println!("search: {} passages for {QUESTION:?}", hits.len());
    for (i, h) in hits.iter().enumerate() {
        println!(
            "  {}. {:.3} {} #{}: {}",
            i + 1,
            h.score,
            path_of(&h.document_id),
            h.chunk_index,
            one_line(&h.content)
        );
    }

    let (status, output) = workflow(&s, &registry).await?;
    println!("workflow: {status}");
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        println!("  {line}");
    }
    println!(
        "ingest: {new} chunks in {seconds:.1} s ({:.1} chunks/s), peak RSS {} MiB",
        new as f64 / seconds.max(1e-3),
        peak_rss_mib().map_or("?".into(), |m| m.to_string())
    );
    println!("dashboard: {base}/dashboard (log in with the api key)");
    println!("api: {base}/api/v1 (Authorization: Bearer <api key>)");
    println!("api key: {key}");
    if a.exit_after_ready {
        shutdown.cancel();
    } else {
        println!("serving until Ctrl-C");
    }
    match worker.await {
        Ok(r) => {
            r?;
        }
        Err(e) => bail!("the worker task ended abnormally: {e}"),
    }
    println!("stopped");
    Ok(())
}

/// The settings the demo runs with: embedded in `./chatter-worker.db`, the API on
/// `127.0.0.1:port` with `key` as its admin key, the local model, documents read from `cwd`.
fn embedded_settings(mut s: Settings, cwd: &Path, model: &Path, port: u16, key: &str) -> Settings {
    s.sqlite = Some(cwd.join(DB));
    s.redis_url = None;
    s.database_url = None;
    s.migrate = true;
    // The working folder, as for every embedded command: the documents stay readable by a
    // `run` or `ingest` started here later.
    s.chunking.storage_root = Some(cwd.to_path_buf());
    // Smaller embedding batches: the progress bar moves as each completes.
    s.chunking.embed_batch = 16;
    s.embedding.provider = Some("local".into());
    s.embedding.model_dir = Some(model.to_path_buf());
    s.http_addr = format!("127.0.0.1:{port}");
    s.api.enabled = true;
    s.api.addr = None;
    s.api.keys.push(ApiKeySettings {
        name: "demo".into(),
        sha256: crate::api::auth::hash_key(key),
        user: OWNER.into(),
        admin: true,
    });
    // A `jobs/schedules.toml` in the folder is not the demo's business.
    s.scheduler = false;
    s
}

/// `port` on loopback when it is free, else one the system picks.
fn free_port(port: u16) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", port))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .context("no free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Wait until `/readyz` answers 200 (the backend, the store and the handlers are up).
async fn ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let until = Instant::now() + READY_LIMIT;
    let url = format!("{base}/readyz");
    loop {
        let last = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= until {
            bail!("the worker was not ready after {READY_LIMIT:?}: GET {url}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ended<T, E: std::fmt::Display>(r: Result<Result<T, E>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(_)) => "it ended".into(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

/// The retrieval workflow: start → retrieval of the top passages for the question → end, whose
/// output lists them. Returns the run's status and output.
async fn workflow(s: &Settings, registry: &Registry) -> anyhow::Result<(String, String)> {
    let definition = json!({
        "name": "demo retrieval",
        "description": "The passages of the owner's documents nearest the question; no LLM.",
        "nodes": [
            {"id": "start", "type": "start", "config": {}},
            {"id": "search", "type": "retrieval",
             "config": {"query": "{{ input.message }}", "limit": TOP}},
            {"id": "end", "type": "end", "config": {"output":
                "{% for d in retrieved %}[{{ loop.index }}] {{ d.content }}\n{% endfor %}"}}
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "search"},
            {"id": "e2", "source": "search", "target": "end"}
        ]
    });
    let job = run_job(&RunWorkflowArgs {
        definition: Some(definition),
        definition_id: None,
        inputs: json!({"message": QUESTION}),
        owner: OWNER.into(),
        execution_id: None,
    })
    .name("demo retrieval")
    .build();
    let id = submit_one(s, registry, &job).await?.id;
    let q = queue_handle(s, queues::WORKFLOWS).await?;
    let until = Instant::now() + READY_LIMIT;
    let rec = loop {
        let rec = q
            .show(&id)
            .await?
            .with_context(|| format!("workflow job {id} vanished"))?;
        if matches!(rec.status.as_str(), "completed" | "failed" | "cancelled") {
            break rec;
        }
        if Instant::now() >= until {
            bail!(
                "workflow job {id} still {} after {READY_LIMIT:?}",
                rec.status
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = match rec.result.as_ref().and_then(|r| r.get("response")) {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => rec.error_message.clone().unwrap_or_default(),
    };
    Ok((rec.status.to_string(), output))
}

/// `text` on one line (a passage is a few hundred words: shown whole).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This process's peak resident memory (`VmHWM`), MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}
