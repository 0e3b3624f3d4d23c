//! Document chunking with real worker processes: a worker killed (-9) in the middle of replacing
//! a document's chunks leaves the old set whole, and the rescued retry on another worker ends
//! with one consistent set; `chatter-worker ingest --wait` registers, enqueues and follows files.
mod common;
#[path = "common/docs.rs"]
mod docs;

use chatter_worker::jobs::chunk::chunk_id;
use common::{WorkerProcess, wait_until};
use docs::{LIMIT, doc_kit, prose};
use serde_json::Value;
use std::process::Command;

fn worker(k: &docs::DocKit) -> WorkerProcess {
    WorkerProcess::spawn(
        &k.h.url,
        &k.h.prefix,
        "chunking",
        &[
            "--database-url",
            &k.url,
            "--storage-root",
            &k.root.to_string_lossy(),
            "--lease",
            "2s",
        ],
    )
}

#[tokio::test]
async fn a_worker_killed_mid_transaction_leaves_one_consistent_set() {
    let k = doc_kit().await;
    let path = k.file("big.txt", prose(600).as_bytes());
    let id = k.register(&path).await;
    let a = worker(&k);
    k.q.enqueue(&k.job(&id, Some(60), Some(10))).await.unwrap();
    let first = k.wait_final(&id).await;
    assert_eq!(first.status, "processed");

    // Hold one of the old chunks: the re-run's replacing transaction blocks in its DELETE.
    let mut hold = k.db.begin().await.unwrap();
    sqlx::query("SELECT id FROM document_chunks WHERE document_id = $1 LIMIT 1 FOR UPDATE")
        .bind(&id)
        .execute(&mut *hold)
        .await
        .unwrap();
    let rerun = k.job(&id, Some(60), Some(10));
    let rerun = chatter_worker::jobs::Job {
        max_retries: 3,
        ..rerun
    };
    k.q.enqueue(&rerun).await.unwrap();
    wait_until(
        LIMIT,
        "the re-run to block inside its transaction",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM document_chunks%'",
            )
            .fetch_one(&k.db)
            .await
            .unwrap();
            waiting > 0
        },
    )
    .await;
    a.signal("KILL");
    a.wait(LIMIT).await;
    hold.rollback().await.unwrap();

    // The killed run's transaction never commits: the old set is still whole.
    let mid = k.doc(&id).await;
    assert_eq!(
        mid.chunks.iter().map(|c| &c.id).collect::<Vec<_>>(),
        first.chunks.iter().map(|c| &c.id).collect::<Vec<_>>()
    );

    let _b = worker(&k);
    wait_until(LIMIT, "the rescued re-run to finish", || async {
        k.q.show(&rerun.id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == "completed")
    })
    .await;
    let rec = k.q.show(&rerun.id).await.unwrap().unwrap();
    assert_eq!(rec.attempt, 2, "the re-run was rescued once");
    let end = k.doc(&id).await;
    assert_eq!(end.status, "processed");
    end.check_invariants(60, 10);
    let want: Vec<String> = (0..end.chunks.len())
        .map(|i| chunk_id(&rerun.id, i))
        .collect();
    assert_eq!(
        end.chunks.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        want
    );
}

#[tokio::test]
async fn ingest_registers_enqueues_and_waits() {
    let k = doc_kit().await;
    std::fs::create_dir_all(k.root.join("docs/nested")).unwrap();
    k.file("docs/a.txt", prose(5).as_bytes());
    k.file("docs/b.md", b"# B\n\nMarkdown body.");
    k.file("docs/nested/c.html", b"<p>Nested page.</p>");
    k.file("docs/empty.txt", b"");
    let _w = worker(&k);
    let ingest = || {
        Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args(["ingest", "docs", "--owner", "u1", "--wait", "60s", "--json"])
            .args(["--database-url", &k.url])
            .args(["--storage-root", &k.root.to_string_lossy()])
            .current_dir(&k.root)
            .env("REDIS_URL", &k.h.url)
            .env("CW_PREFIX", &k.h.prefix)
            .output()
            .unwrap()
    };
    let out = ingest();
    assert_eq!(out.status.code(), Some(2), "one document failed: exit 2");
    let first: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let status = |v: &Vec<Value>, p: &str| {
        v.iter()
            .find(|d| d["path"] == p)
            .map(|d| d["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(first.len(), 4);
    for p in ["docs/a.txt", "docs/b.md", "docs/nested/c.html"] {
        assert_eq!(status(&first, p).as_deref(), Some("processed"), "{p}");
    }
    assert_eq!(status(&first, "docs/empty.txt").as_deref(), Some("failed"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 4"));

    // Again: the same documents, the same jobs (idempotency keys), nothing new to run.
    let again: Vec<Value> = serde_json::from_slice(&ingest().stdout).unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a["document_id"], b["document_id"]);
        assert_eq!(a["job_id"], b["job_id"]);
        assert_eq!(b["new_document"], false);
    }
}

#[tokio::test]
async fn migrate_creates_the_tables_once() {
    let k = doc_kit().await;
    let schema = format!("{}_m", k.schema);
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&k.db)
        .await
        .unwrap();
    let url = k.url.replace(&k.schema, &schema);
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1
         ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(&k.db)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "audit_logs",
            "conversations",
            "document_chunks",
            "document_runs",
            "documents",
            "embedding_spaces",
            "messages",
            "workflow_definitions",
            "workflow_executions",
            "workflow_memory",
            "workflow_steps"
        ]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .args([
            "migrate",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database"));
}
