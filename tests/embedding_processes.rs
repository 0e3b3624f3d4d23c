//! Embedding with real worker processes against the local OpenAI-compatible server: two workers
//! share one provider account's rate limit through Redis; ingesting the same corpus twice sends
//! the provider nothing the second time (and the cache metric says so); a 2,000-chunk document
//! whose batches run on three workers, one killed (-9) mid-way, ends processed exactly once with
//! one vector per chunk.
mod common;
#[path = "common/docs.rs"]
mod docs;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use common::{WorkerProcess, wait_until};
use docs::{DocKit, doc_kit, prose};
use fake_openai::FakeOpenAi;
use futures::StreamExt;
use std::process::Command;
use std::time::Duration;

/// A config file pointing the workers at the fake provider.
fn config(k: &DocKit, fake: &FakeOpenAi, extra_embedding: &str, embed_batch: usize) -> String {
    let path = k.root.join(format!("worker-{}.toml", ulid::Ulid::new()));
    std::fs::write(
        &path,
        format!(
            "[embedding]\nprovider = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-test\"\n\
             model = \"fake-embedding-model\"\ndimensions = 16\n{extra_embedding}\n\
             [chunking]\nembed_batch = {embed_batch}\n",
            fake.base_url
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn worker(k: &DocKit, config: &str) -> WorkerProcess {
    WorkerProcess::spawn(
        &k.h.url,
        &k.h.prefix,
        "chunking,embedding",
        &[
            "--database-url",
            &k.url,
            "--storage-root",
            &k.root.to_string_lossy(),
            "--config",
            config,
            "--lease",
            "2s",
        ],
    )
}

/// Sum of a counter's samples whose labels contain `label` (0 when absent).
fn metric(body: &str, name: &str, label: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_stay_under_the_shared_request_limit() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    // 6 requests a second for the account, whichever process asks.
    let cfg = config(
        &k,
        &fake,
        "requests_per_minute = 6\nrate_window_secs = 1.0",
        1,
    );
    let a = worker(&k, &cfg);
    let b = worker(&k, &cfg);
    let path = k.file("doc.txt", prose(12).as_bytes());
    let doc = k.ingest(&path, Some(24), Some(0)).await;
    assert_eq!(doc.status, "processed", "{:?}", doc.error);
    let sent = fake.requests();
    assert!(sent >= 24, "enough requests to be limited: {sent}");
    // Arrival times on the server. A request granted at g arrives at g + d: if d stays under D,
    // the arrivals inside any window of 1 s - D were granted inside 1 s, so at most 6. D is
    // 300 ms: with the whole suite on two cores, D = 50 ms once saw 9 arrivals inside 950 ms
    // (alone, the test passed every run). Without a limit the 24 requests arrive together.
    let most = fake.max_in_window(Duration::from_millis(700));
    assert!(
        most <= 6,
        "{most} requests inside one window of the limit 6/s"
    );
    let waits = metric(
        &a.get("/metrics").await,
        "chatter_rate_limit_waits_total",
        "openai",
    ) + metric(
        &b.get("/metrics").await,
        "chatter_rate_limit_waits_total",
        "openai",
    );
    assert!(waits > 0.0, "waits are counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingesting_the_same_corpus_twice_sends_no_provider_request() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let cfg = config(&k, &fake, "", 20);
    let w = worker(&k, &cfg);
    std::fs::create_dir_all(k.root.join("corpus")).unwrap();
    for i in 0..4 {
        k.file(&format!("corpus/{i}.txt"), prose(20 + i * 7).as_bytes());
    }
    let ingest = |owner: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args([
                "ingest", "corpus", "--owner", owner, "--wait", "120s", "--json",
            ])
            .args(["--database-url", &k.url])
            .args(["--storage-root", &k.root.to_string_lossy()])
            .current_dir(&k.root)
            .env("REDIS_URL", &k.h.url)
            .env("CW_PREFIX", &k.h.prefix)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v.iter().all(|d| d["status"] == "processed"), "{v:?}");
        v.len()
    };
    assert_eq!(ingest("alice"), 4);
    let first = fake.requests();
    let body = w.get("/metrics").await;
    let misses = metric(
        &body,
        "chatter_embedding_cache_requests_total",
        "result=\"miss\"",
    );
    assert!(first > 0 && misses > 0.0);
    // The same corpus again, as new documents of another owner: every text is cached.
    assert_eq!(ingest("bob"), 4);
    assert_eq!(
        fake.requests(),
        first,
        "no provider request the second time"
    );
    let body = w.get("/metrics").await;
    let hits = metric(
        &body,
        "chatter_embedding_cache_requests_total",
        "result=\"hit\"",
    );
    assert_eq!(
        metric(
            &body,
            "chatter_embedding_cache_requests_total",
            "result=\"miss\""
        ),
        misses,
        "no new miss"
    );
    assert!(
        hits >= misses,
        "every text of the second run hit: {hits} hits, {misses} misses"
    );
    let (docs, vectors): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM documents WHERE status = 'processed'),
                (SELECT count(*) FROM document_chunks WHERE embedding_model = 'fake-embedding-model')",
    )
    .fetch_one(&k.db)
    .await
    .unwrap();
    assert_eq!(docs, 8);
    assert!(vectors > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2000_chunk_document_survives_a_killed_worker_and_completes_once() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    fake.set_delay(Duration::from_millis(150));
    let cfg = config(&k, &fake, "", 50);
    let mut workers: Vec<WorkerProcess> = (0..3).map(|_| worker(&k, &cfg)).collect();
    // 2,000 short paragraphs, each its own chunk at 12 tokens.
    let text: String = (0..2000)
        .map(|i| format!("Paragraph {i} is about the queue.\n\n"))
        .collect();
    let path = k.file("long.txt", text.as_bytes());
    let id = k.register(&path).await;
    let client = redis::Client::open(k.h.url.as_str()).unwrap();
    let mut events = client.get_async_pubsub().await.unwrap();
    events
        .subscribe(format!("{}:events", k.h.prefix))
        .await
        .unwrap();
    k.q.enqueue(&k.job(&id, Some(12), Some(0))).await.unwrap();

    // Kill one worker once a quarter of the vectors are in.
    let space: String = {
        wait_until(Duration::from_secs(60), "the vector space", || async {
            sqlx::query("SELECT 1 FROM embedding_spaces")
                .fetch_optional(&k.db)
                .await
                .ok()
                .flatten()
                .is_some()
        })
        .await;
        sqlx::query_scalar("SELECT vector_table FROM embedding_spaces")
            .fetch_one(&k.db)
            .await
            .unwrap()
    };
    let count_sql = format!("SELECT count(*) FROM {space}");
    let vectors = || async {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql.clone()))
            .fetch_one(&k.db)
            .await
            .unwrap()
    };
    wait_until(Duration::from_secs(120), "500 vectors", || async {
        vectors().await >= 500
    })
    .await;
    let victim = workers.remove(1);
    victim.signal("KILL");
    assert!(vectors().await < 2000, "killed mid-way");

    let doc = k.wait_final(&id).await;
    assert_eq!(doc.status, "processed", "{:?}", doc.error);
    assert_eq!(doc.chunks.len(), 2000);
    assert_eq!(doc.chunk_count, 2000);
    let (rows, distinct, missing): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {space}), (SELECT count(DISTINCT chunk_id) FROM {space}),
                (SELECT count(*) FROM document_chunks c WHERE NOT EXISTS
                    (SELECT 1 FROM {space} v WHERE v.chunk_id = c.id))"
    )))
    .fetch_one(&k.db)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct, missing),
        (2000, 2000, 0),
        "one vector per chunk"
    );
    let mut completed = 0;
    let mut stream = events.on_message();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
        let v: serde_json::Value =
            serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
        if v["type"] == "document.processing_completed" && v["document_id"] == id.as_str() {
            completed += 1;
        }
    }
    assert_eq!(completed, 1, "completed exactly once");
    drop(victim);
}
