//! The embedded store (`SqliteStore`) on a fresh SQLite file per test: every role behaves as the
//! PostgreSQL store, its spec. The documents and workflows scenarios return a transcript of what
//! the store answered; `*_as_postgres` runs the same scenario on both stores and compares the
//! transcripts (PostgreSQL at DATABASE_URL, a schema per test). Search is checked against a
//! brute-force cosine ranking computed here.
use chatter_jobs::maintenance::Maintenance;
use chatter_jobs::store::sqlite::{SqliteStore, open};
use chatter_jobs::store::vectors::{BatchWrite, ChunkText, Space, SpaceTables};
use chatter_jobs::store::workflows::{Begun, Ending, NewExecution};
use chatter_jobs::store::{
    DocumentStatus, DocumentStore, Extracted, MaintenanceStore, NewChunk, NewDocument, Run, Store,
    StoreError, StoreHealth, VectorStore, WorkflowStore,
};
use chatter_jobs::workflows::state::{LogEntry, Message, State};
use serde_json::{Value, json};
use std::path::PathBuf;

/// A search filter (owner, documents) and how many hits to ask for.
type Case<'a> = (Option<&'a str>, Option<Vec<String>>, usize);

/// A migrated SQLite file of the test's own (removed, with its WAL, when dropped).
struct Kit {
    store: SqliteStore,
    db: sqlx::SqlitePool,
    path: PathBuf,
}

impl Drop for Kit {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

async fn kit() -> Kit {
    let path = std::env::temp_dir().join(format!("cw-sqlite-store-{}.db", ulid::Ulid::new()));
    let db = open(&path).await.expect("open the SQLite file");
    Kit {
        store: SqliteStore::new(db.clone()),
        db,
        path,
    }
}

/// A migrated PostgreSQL schema of the test's own, and a pool on it for direct reads.
async fn pg() -> (Store, sqlx::PgPool, String) {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run the tests through scripts/test.sh");
    let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema},public");
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    (store, db, schema)
}

async fn drop_schema(db: &sqlx::PgPool, schema: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(db)
        .await
        .unwrap();
}

fn run(job: &str, fence: i64) -> Run {
    Run {
        job_id: job.into(),
        fence,
    }
}

fn chunks(prefix: &str, n: usize) -> Vec<NewChunk> {
    (0..n)
        .map(|i| {
            let content = format!("{prefix} chunk {i}");
            NewChunk {
                id: ulid::Ulid::new().to_string(),
                chunk_index: i as i32,
                content_hash: format!("hash-{content}"),
                token_count: 3,
                start_char: (i * 10) as i32,
                end_char: (i * 10 + 9) as i32,
                content,
            }
        })
        .collect()
}

fn extracted(hash: &str) -> Extracted {
    Extracted {
        text: "the text".into(),
        document_type: "text".into(),
        mime_type: "text/plain".into(),
        file_size: 8,
        file_hash: hash.into(),
    }
}

fn superseded(r: Result<(), StoreError>) -> Value {
    match r {
        Err(StoreError::Superseded { job_id, fence, .. }) => json!(["superseded", job_id, fence]),
        other => json!(format!("{other:?}")),
    }
}

/// A document's whole life; the transcript names documents by label, not id.
async fn document_life(s: &dyn DocumentStore) -> Vec<Value> {
    let mut t = Vec::new();
    let mut d = NewDocument::new("alice", "docs/a.txt");
    d.file_hash = Some("h1".into());
    let (id, created) = s.register_document(&d).await.unwrap();
    let (again, created_again) = s.register_document(&d).await.unwrap();
    assert_eq!(id, again, "the same file of the same owner is one document");
    t.push(json!(["register", created, created_again]));
    let mut other = d.clone();
    other.owner_id = "bob".into();
    let (bob_id, bob_created) = s.register_document(&other).await.unwrap();
    assert_ne!(bob_id, id);
    t.push(json!(["register other owner", bob_created]));
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!([
        "document",
        doc.status,
        doc.filename,
        doc.chunk_count
    ]));

    // Not started: no run owns it.
    let (r0, x0, c0) = (run("j0", 1), extracted("x"), chunks("a", 1));
    t.push(superseded(
        s.replace_chunks(&id, &r0, &x0, &c0, false).await,
    ));

    let r1 = run("j1", 1);
    let started = s.start_processing(&id, &r1).await.unwrap().unwrap();
    t.push(json!(["start", started.status]));
    let first = chunks("a", 3);
    s.replace_chunks(&id, &r1, &extracted("h1"), &first, false)
        .await
        .unwrap();
    let ids = s.chunk_ids(&id).await.unwrap();
    assert_eq!(ids, first.iter().map(|c| c.id.clone()).collect::<Vec<_>>());
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!(["chunks", ids.len(), doc.status, doc.chunk_count]));

    // A newer job takes over: the first run changes nothing any more.
    let r2 = run("j2", 2);
    s.start_processing(&id, &r2).await.unwrap().unwrap();
    t.push(superseded(
        s.replace_chunks(&id, &r1, &extracted("h1"), &chunks("b", 1), true)
            .await,
    ));
    t.push(superseded(s.fail_document(&id, &r1, "late").await));
    assert_eq!(s.chunk_ids(&id).await.unwrap(), ids, "chunks untouched");

    let second = chunks("c", 2);
    s.replace_chunks(&id, &r2, &extracted("h1"), &second, true)
        .await
        .unwrap();
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!([
        "processed",
        doc.status,
        doc.chunk_count,
        doc.processing_error
    ]));
    assert_eq!(s.chunk_ids(&id).await.unwrap().len(), 2);

    s.fail_document(&id, &r2, "boom").await.unwrap();
    let doc = s.document(&id).await.unwrap().unwrap();
    t.push(json!([
        "failed",
        doc.status,
        doc.chunk_count,
        doc.processing_error
    ]));
    assert!(s.chunk_ids(&id).await.unwrap().is_empty());

    let st = s
        .statuses(&[id.clone(), bob_id.clone(), "missing".into()])
        .await
        .unwrap();
    let labelled: Vec<Value> = st
        .iter()
        .map(|(i, status, err)| json!([if *i == id { "alice" } else { "bob" }, status, err]))
        .collect();
    t.push(json!([
        "statuses",
        labelled.len(),
        labelled.iter().any(|l| l[0] == "alice" && l[1] == "failed")
    ]));
    let missing = s.start_processing("missing", &r1).await;
    t.push(json!([
        "start missing",
        matches!(missing, Err(StoreError::NoDocument(_)))
    ]));
    t
}

#[tokio::test]
async fn a_documents_whole_life() {
    let k = kit().await;
    k.store.ping().await.unwrap();
    let t = document_life(&k.store).await;
    assert_eq!(
        t,
        [
            json!(["register", true, false]),
            json!(["register other owner", true]),
            json!(["document", DocumentStatus::Pending, "a.txt", 0]),
            json!(["superseded", "", 0]),
            json!(["start", "processing"]),
            json!(["chunks", 3, "processing", 3]),
            json!(["superseded", "j2", 2]),
            json!(["superseded", "j2", 2]),
            json!(["processed", "processed", 2, null]),
            json!(["failed", "failed", 0, "boom"]),
            json!(["statuses", 2, true]),
            json!(["start missing", true]),
        ]
    );
    // An archived document is left alone.
    let (id, _) = k
        .store
        .register_document(&NewDocument::new("alice", "b.txt"))
        .await
        .unwrap();
    sqlx::query("UPDATE documents SET status = 'archived' WHERE id = ?1")
        .bind(&id)
        .execute(&k.db)
        .await
        .unwrap();
    assert!(
        k.store
            .start_processing(&id, &run("j", 1))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_documents_whole_life_as_postgres() {
    let k = kit().await;
    let (pg, db, schema) = pg().await;
    assert_eq!(document_life(&k.store).await, document_life(&pg).await);
    drop_schema(&db, &schema).await;
}

/// Deterministic vectors in [-1, 1).
fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..dims)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
    dot / (na * nb).sqrt()
}

/// One processed document of `n` embedded chunks (written in two batches by its run).
struct Embedded {
    id: String,
    owner: String,
    vectors: Vec<(String, Vec<f32>)>,
}

async fn embedded<S: DocumentStore + VectorStore>(
    s: &S,
    t: &SpaceTables,
    owner: &str,
    path: &str,
    n: usize,
    seed: u64,
) -> Embedded {
    let (id, _) = s
        .register_document(&NewDocument::new(owner, path))
        .await
        .unwrap();
    let r = run(&format!("job-{seed}"), 1);
    s.start_processing(&id, &r).await.unwrap().unwrap();
    let cs = chunks(path, n);
    s.replace_chunks(&id, &r, &extracted(""), &cs, false)
        .await
        .unwrap();
    let ids: Vec<String> = cs.iter().map(|c| c.id.clone()).collect();
    let texts = s.chunk_texts(t, &id, &ids).await.unwrap();
    assert_eq!(texts.len(), n);
    assert!(texts.iter().all(|c| !c.has_vector));
    let with: Vec<(ChunkText, Vec<f32>)> = texts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, vector(seed * 1000 + i as u64, t.space.dimensions)))
        .collect();
    let current = |x: &Run, _: &ChunkText| *x == r;
    let (a, b) = with.split_at(n / 2);
    let w = s.write_batch(t, &id, &a[0].0, a, &current).await.unwrap();
    assert_eq!(
        w,
        BatchWrite::Written {
            rows: a.len() as u64,
            completed: None
        }
    );
    let w = s.write_batch(t, &id, &b[0].0, b, &current).await.unwrap();
    assert_eq!(
        w,
        BatchWrite::Written {
            rows: b.len() as u64,
            completed: Some(n as i32)
        }
    );
    let doc = s.document(&id).await.unwrap().unwrap();
    assert_eq!(
        (doc.status, doc.chunk_count),
        (DocumentStatus::Processed, n as i32)
    );
    assert!(
        s.chunk_texts(t, &id, &ids)
            .await
            .unwrap()
            .iter()
            .all(|c| c.has_vector)
    );
    Embedded {
        id,
        owner: owner.into(),
        vectors: with.into_iter().map(|(c, v)| (c.id, v)).collect(),
    }
}

/// The brute-force ranking of `docs`' chunks passing the filter: (chunk id, similarity).
fn brute(
    docs: &[&Embedded],
    query: &[f32],
    k: usize,
    keep: impl Fn(&Embedded) -> bool,
) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = docs
        .iter()
        .filter(|d| keep(d))
        .flat_map(|d| {
            d.vectors
                .iter()
                .map(|(id, v)| (id.clone(), cosine(query, v)))
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.truncate(k);
    all
}

fn space(model: &str, dimensions: usize) -> Space {
    Space {
        provider: "local".into(),
        model: model.into(),
        dimensions,
    }
}

#[tokio::test]
async fn vectors_spaces_cache_batches_and_exact_search() {
    let k = kit().await;
    let s = &k.store;
    let sp = space("test-model", 8);
    let t = s.ensure_space(&sp).await.unwrap();
    assert_eq!(s.ensure_space(&sp).await.unwrap(), t, "twice is fine");
    // Another dimension is another space (its own tables), as in pgvector.
    let t16 = s.ensure_space(&space("test-model", 16)).await.unwrap();
    assert_ne!(t16.vectors, t.vectors);
    // A space whose tables exist for another model or dimension is refused.
    let forged = SpaceTables::of(&space("forged", 4));
    sqlx::query(
        "INSERT INTO embedding_spaces (name, provider, model, dimensions, vector_table, cache_table)
         VALUES (?1, 'local', 'someone-else', 4, 'v', 'c')",
    )
    .bind(&forged.name)
    .execute(&k.db)
    .await
    .unwrap();
    let refused = s.ensure_space(&space("forged", 4)).await;
    assert!(matches!(refused, Err(StoreError::Space(_))), "{refused:?}");

    // The cache: first writer wins; misses are absent; a wrong size is refused.
    let (v1, v2) = (vector(1, 8), vector(2, 8));
    s.cache_put(&t, &[("h1".into(), v1.clone())]).await.unwrap();
    s.cache_put(&t, &[("h1".into(), v2), ("h2".into(), v1.clone())])
        .await
        .unwrap();
    let got = s
        .cached(&t, &["h1".into(), "h2".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["h1"], v1);
    assert!(matches!(
        s.cache_put(&t, &[("h3".into(), vec![1.0; 3])]).await,
        Err(StoreError::Data(_))
    ));

    let a1 = embedded(s, &t, "alice", "a1.txt", 10, 1).await;
    let a2 = embedded(s, &t, "alice", "a2.txt", 7, 2).await;
    let b1 = embedded(s, &t, "bob", "b1.txt", 9, 3).await;
    let all = [&a1, &a2, &b1];
    for q in 0..5u64 {
        let query = vector(77 + q, 8);
        let cases: [Case; 5] = [
            (None, None, 5),
            (Some("alice"), None, 6),
            (None, Some(vec![a2.id.clone()]), 4),
            (Some("bob"), Some(vec![a1.id.clone(), b1.id.clone()]), 100),
            (Some("bob"), Some(vec![a1.id.clone()]), 3),
        ];
        for (owner, docs, k) in cases {
            let hits = s
                .search(&t, &query, k, owner, docs.as_deref(), 40)
                .await
                .unwrap();
            let want = brute(&all, &query, k, |d| {
                owner.is_none_or(|o| d.owner == o)
                    && docs.as_ref().is_none_or(|ds| ds.contains(&d.id))
            });
            let got: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
            let ids: Vec<&str> = want.iter().map(|(i, _)| i.as_str()).collect();
            assert_eq!(got, ids, "owner {owner:?} documents {docs:?} k {k}");
            for (h, (_, score)) in hits.iter().zip(&want) {
                assert!((h.score - score).abs() < 1e-9, "{} vs {score}", h.score);
            }
        }
    }
    // A hit carries its chunk.
    let hit = &s
        .search(&t, &a1.vectors[3].1, 1, None, None, 40)
        .await
        .unwrap()[0];
    assert_eq!(
        (
            hit.chunk_id.as_str(),
            hit.document_id.as_str(),
            hit.chunk_index
        ),
        (a1.vectors[3].0.as_str(), a1.id.as_str(), 3)
    );
    assert_eq!(hit.content, "a1.txt chunk 3");
    assert!((hit.score - 1.0).abs() < 1e-9);
    assert!(matches!(
        s.search(&t, &[1.0; 3], 5, None, None, 40).await,
        Err(StoreError::Data(_))
    ));

    // A new run replaces the chunks: their vectors go with them; the old run's batches are
    // stale and its failure changes nothing.
    let old = run("job-1", 1);
    let new = run("job-9", 2);
    s.start_processing(&a1.id, &new).await.unwrap().unwrap();
    s.replace_chunks(&a1.id, &new, &extracted(""), &chunks("a1 again", 2), false)
        .await
        .unwrap();
    let hits = s
        .search(&t, &vector(5, 8), 100, None, None, 40)
        .await
        .unwrap();
    assert_eq!(hits.len(), 16, "a1's old vectors are gone");
    assert!(hits.iter().all(|h| h.document_id != a1.id));
    let ids = s.chunk_ids(&a1.id).await.unwrap();
    let texts = s.chunk_texts(&t, &a1.id, &ids).await.unwrap();
    let is_old = |x: &Run, _: &ChunkText| *x == old;
    let batch = vec![(texts[0].clone(), vector(9, 8))];
    let stale = s
        .write_batch(&t, &a1.id, &texts[0], &batch, &is_old)
        .await
        .unwrap();
    assert!(matches!(stale, BatchWrite::Stale(_)), "{stale:?}");
    assert!(
        !s.fail_embedding(&a1.id, &texts[0], &is_old, "late")
            .await
            .unwrap()
    );
    let gone = s
        .write_batch(&t, "missing", &texts[0], &batch, &is_old)
        .await
        .unwrap();
    assert!(matches!(gone, BatchWrite::Stale(_)));
    // The current run's failure counts.
    let is_new = |x: &Run, _: &ChunkText| *x == new;
    assert!(
        s.fail_embedding(&a1.id, &texts[0], &is_new, "provider down")
            .await
            .unwrap()
    );
    let doc = s.document(&a1.id).await.unwrap().unwrap();
    assert_eq!(
        (doc.status, doc.processing_error.as_deref()),
        (DocumentStatus::Failed, Some("provider down"))
    );
    assert!(
        !s.fail_embedding(&a1.id, &texts[0], &is_new, "again")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn exact_search_as_postgres() {
    let k = kit().await;
    let (pg, db, schema) = pg().await;
    let sp = space("compare-model", 16);
    let (ts, tp) = (
        k.store.ensure_space(&sp).await.unwrap(),
        pg.ensure_space(&sp).await.unwrap(),
    );
    let mut docs = Vec::new();
    for (i, owner) in ["alice", "bob", "alice"].into_iter().enumerate() {
        let seed = i as u64 + 10;
        let a = embedded(&k.store, &ts, owner, &format!("d{i}.txt"), 12, seed).await;
        let b = embedded(&pg, &tp, owner, &format!("d{i}.txt"), 12, seed).await;
        docs.push((a, b));
    }
    for q in 0..5u64 {
        let query = vector(500 + q, 16);
        for owner in [None, Some("alice")] {
            let hs = k
                .store
                .search(&ts, &query, 8, owner, None, 100)
                .await
                .unwrap();
            let hp = pg.search(&tp, &query, 8, owner, None, 100).await.unwrap();
            assert_eq!(hs.len(), hp.len());
            for (a, b) in hs.iter().zip(&hp) {
                assert_eq!((a.chunk_index, &a.content), (b.chunk_index, &b.content));
                assert!(
                    (a.score - b.score).abs() < 1e-5,
                    "{} vs {}",
                    a.score,
                    b.score
                );
            }
        }
    }
    drop_schema(&db, &schema).await;
}

fn execution<'a>(
    id: &'a str,
    owner: &'a str,
    job: &'a str,
    fence: i64,
    io: &'a Value,
) -> NewExecution<'a> {
    NewExecution {
        id,
        definition_id: None,
        owner_id: owner,
        workflow_type: "custom",
        config: io,
        inputs: io,
        job_id: job,
        fence,
    }
}

fn begun(b: Begun) -> Value {
    match b {
        Begun::Running { checkpoint } => json!(["running", checkpoint.map(|c| c.step)]),
        Begun::Ended {
            status,
            output,
            error,
        } => json!(["ended", status, output, error]),
        Begun::Refused(why) => json!(["refused", why]),
    }
}

/// The execution's JSON with what differs between runs (its time) reduced to its presence.
async fn shown(s: &dyn WorkflowStore, id: &str) -> Value {
    let mut e = s.execution(id).await.unwrap().unwrap();
    e["execution_time_ms"] = json!(e["execution_time_ms"].as_i64().map(|ms| ms >= 0));
    e
}

/// Definitions, a run's fenced life, memory and the reconciler's calls; a transcript.
async fn workflow_life(s: &dyn WorkflowStore, x: &str) -> Vec<Value> {
    let mut t = Vec::new();
    let def =
        json!({"name": "wf", "nodes": [{"id": "start", "type": "start"}], "edges": [], "extra": 1});
    let def_id = s.put_workflow_definition("alice", &def).await.unwrap();
    t.push(json!(
        s.workflow_definition(&def_id, "alice").await.unwrap()
    ));
    t.push(json!(s.workflow_definition(&def_id, "bob").await.unwrap()));

    let io = json!({"question": "why?"});
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 1, &io))
            .await
            .unwrap(),
    ));
    t.push(shown(s, x).await);
    let mut state = State::new(io.clone(), 0);
    state.step = 1;
    state.prompt_tokens = 10;
    state.completion_tokens = 5;
    state.cost = 0.25;
    state.log.push(LogEntry {
        step: 1,
        node: "start".into(),
        kind: "start".into(),
        ms: 3,
        error: None,
    });
    t.push(json!([
        "save",
        s.save_step(x, "j1", 1, &state).await.unwrap()
    ]));
    t.push(json!([
        "save stale fence",
        s.save_step(x, "j1", 0, &state).await.unwrap()
    ]));
    t.push(json!([
        "save other job",
        s.save_step(x, "j2", 1, &state).await.unwrap()
    ]));
    // The same job claimed again resumes from the checkpoint; others are refused.
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 2, &io))
            .await
            .unwrap(),
    ));
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j2", 3, &io))
            .await
            .unwrap(),
    ));
    t.push(begun(
        s.begin_execution(&execution(x, "bob", "j1", 4, &io))
            .await
            .unwrap(),
    ));
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 1, &io))
            .await
            .unwrap(),
    ));
    let output = json!({"answer": 42});
    let end = Ending {
        status: "completed",
        output: Some(&output),
        error: None,
        state: &state,
    };
    t.push(json!([
        "end old claim",
        s.end_execution(x, "j1", 1, &end).await.unwrap()
    ]));
    t.push(json!([
        "end",
        s.end_execution(x, "j1", 2, &end).await.unwrap()
    ]));
    t.push(shown(s, x).await);
    t.push(begun(
        s.begin_execution(&execution(x, "alice", "j1", 5, &io))
            .await
            .unwrap(),
    ));

    // Memory: a window of the latest, oldest first, per owner and key.
    let msgs: Vec<Message> = (0..5)
        .map(|i| {
            Message::new(
                if i % 2 == 0 { "user" } else { "assistant" },
                format!("m{i}"),
            )
        })
        .collect();
    s.memory_store("alice", "k", &msgs).await.unwrap();
    s.memory_store("alice", "k", &[]).await.unwrap();
    s.memory_store("alice", "other", &msgs[..1]).await.unwrap();
    let window = |m: Vec<Message>| {
        json!(
            m.iter()
                .map(|m| format!("{}:{}", m.role, m.content))
                .collect::<Vec<_>>()
        )
    };
    t.push(window(s.memory_load("alice", "k", 3).await.unwrap()));
    t.push(window(s.memory_load("alice", "k", 10).await.unwrap()));
    t.push(window(s.memory_load("bob", "k", 10).await.unwrap()));

    // The reconciler: idle open executions, closed under their job only.
    let y = format!("{x}-idle");
    s.begin_execution(&execution(&y, "alice", "j9", 1, &io))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let idle = s.idle_executions(0.001, 10).await.unwrap();
    t.push(json!(["idle", idle == [(y.clone(), "j9".to_string())]]));
    t.push(json!([
        "idle an hour",
        s.idle_executions(3600.0, 10).await.unwrap().len()
    ]));
    t.push(json!([
        "close other job",
        s.close_execution(&y, "j8", "cancelled", "gone")
            .await
            .unwrap()
    ]));
    t.push(json!([
        "close",
        s.close_execution(&y, "j9", "cancelled", "job cancelled")
            .await
            .unwrap()
    ]));
    t.push(json!([
        "close again",
        s.close_execution(&y, "j9", "cancelled", "again")
            .await
            .unwrap()
    ]));
    t.push(shown(s, &y).await);
    t.push(json!(s.execution("nope").await.unwrap()));
    t
}

/// Ids differ between stores: the transcript with this run's ids replaced by labels.
fn relabel(mut t: Vec<Value>, x: &str) -> Vec<Value> {
    for v in &mut t {
        let s = v
            .to_string()
            .replace(&format!("{x}-idle"), "Y")
            .replace(x, "X");
        *v = serde_json::from_str(&s).unwrap();
    }
    t
}

#[tokio::test]
async fn workflows_definitions_runs_memory_and_reconciling() {
    let k = kit().await;
    let x = ulid::Ulid::new().to_string();
    let t = relabel(workflow_life(&k.store, &x).await, &x);
    let running = json!({
        "id": "X", "definition_id": null, "owner_id": "alice", "workflow_type": "custom",
        "status": "running", "input_data": {"question": "why?"}, "output_data": null,
        "error_message": null, "execution_log": [], "tokens_used": 0, "cost": 0.0,
        "execution_time_ms": null, "job_id": "j1", "started": true, "completed": false,
    });
    let completed = json!({
        "id": "X", "definition_id": null, "owner_id": "alice", "workflow_type": "custom",
        "status": "completed", "input_data": {"question": "why?"}, "output_data": {"answer": 42},
        "error_message": null, "execution_log": [{"step": 1, "node": "start", "kind": "start", "ms": 3}],
        "tokens_used": 15, "cost": 0.25, "execution_time_ms": true, "job_id": "j1",
        "started": true, "completed": true,
    });
    let want = [
        json!({"name": "wf", "nodes": [{"id": "start", "type": "start"}], "edges": [], "version": 1}),
        json!(null),
        json!(["running", null]),
        running,
        json!(["save", true]),
        json!(["save stale fence", false]),
        json!(["save other job", false]),
        json!(["running", 1]),
        json!(["refused", "execution X is being run by job j1"]),
        json!(["refused", "execution X belongs to another owner"]),
        json!(["refused", "execution X is run by a newer claim (2 > 1)"]),
        json!(["end old claim", false]),
        json!(["end", true]),
        completed,
        json!(["ended", "completed", {"answer": 42}, null]),
        json!(["user:m2", "assistant:m3", "user:m4"]),
        json!([
            "user:m0",
            "assistant:m1",
            "user:m2",
            "assistant:m3",
            "user:m4"
        ]),
        json!([]),
        json!(["idle", true]),
        json!(["idle an hour", 0]),
        json!(["close other job", false]),
        json!(["close", true]),
        json!(["close again", false]),
    ];
    assert_eq!(t[..want.len()], want);
    let closed = &t[want.len()];
    assert_eq!(
        (
            &closed["status"],
            &closed["error_message"],
            &closed["completed"]
        ),
        (&json!("cancelled"), &json!("job cancelled"), &json!(true))
    );
    assert_eq!(t[want.len() + 1], json!(null));
    assert_eq!(t.len(), want.len() + 2);
}

#[tokio::test]
async fn workflows_as_postgres() {
    let k = kit().await;
    let (pg, db, schema) = pg().await;
    let x = ulid::Ulid::new().to_string();
    let ours = relabel(workflow_life(&k.store, &x).await, &x);
    let theirs = relabel(workflow_life(&pg, &x).await, &x);
    assert_eq!(ours, theirs);
    drop_schema(&db, &schema).await;
}

async fn exec(db: &sqlx::SqlitePool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(db)
        .await
        .unwrap();
}

async fn pairs(db: &sqlx::SqlitePool, sql: &str) -> Vec<(String, String)> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(db)
        .await
        .unwrap()
}

/// tests/maintenance.rs on the embedded store: the same seeds, the same reports.
#[tokio::test]
async fn each_maintenance_job_changes_what_it_should_once() {
    let k = kit().await;
    let db = &k.db;
    let m = Maintenance::new(k.store.clone());
    let days = |n: i64| format!("(CAST(unixepoch('subsec') * 1000 AS INTEGER) - {n} * 86400000)");
    let s = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };

    exec(db, &format!("INSERT INTO audit_logs (id, action, created_at) VALUES ('old', 'login', {}), ('recent', 'login', {})", days(400), days(10))).await;
    assert_eq!(
        m.run("database_maintenance").await.unwrap(),
        json!({"audit_logs_deleted": 1, "vacuum_analyze": true})
    );
    assert_eq!(
        pairs(db, "SELECT id, action FROM audit_logs ORDER BY id").await,
        s(&[("recent", "login")])
    );
    assert_eq!(
        m.run("database_maintenance").await.unwrap()["audit_logs_deleted"],
        0
    );

    for (id, status, created, updated) in [
        ("idle", "processed", 100, 95),
        ("ancient", "processed", 400, 1),
        ("fresh", "processed", 30, 1),
        ("pending_old", "pending", 400, 400),
        ("failed_old", "failed", 400, 400),
    ] {
        exec(db, &format!("INSERT INTO documents (id, owner_id, title, filename, file_path, status, created_at, updated_at) VALUES ('{id}', 'o', 't', 'f', 'p', '{status}', {}, {})", days(created), days(updated))).await;
    }
    assert_eq!(
        m.run("document_archiving").await.unwrap(),
        json!({"documents_archived": 2})
    );
    assert_eq!(
        pairs(db, "SELECT id, status FROM documents ORDER BY id").await,
        s(&[
            ("ancient", "archived"),
            ("failed_old", "failed"),
            ("fresh", "processed"),
            ("idle", "archived"),
            ("pending_old", "pending")
        ])
    );
    assert_eq!(
        m.run("document_archiving").await.unwrap()["documents_archived"],
        0
    );

    for (id, status, last, updated) in [
        ("idle", "active", Some(200), 200),
        ("talking", "active", Some(5), 300),
        ("gone", "archived", None, 800),
        ("kept", "archived", None, 100),
    ] {
        let last = last.map_or("NULL".to_string(), days);
        exec(db, &format!("INSERT INTO conversations (id, user_id, status, last_message_at, updated_at) VALUES ('{id}', 'u', '{status}', {last}, {}); INSERT INTO messages (id, conversation_id, role, content) VALUES ('m-{id}', '{id}', 'user', 'hi')", days(updated))).await;
    }
    assert_eq!(
        m.run("conversation_cleanup").await.unwrap(),
        json!({"conversations_archived": 1, "conversations_deleted": 1})
    );
    assert_eq!(
        pairs(db, "SELECT id, status FROM conversations ORDER BY id").await,
        s(&[
            ("idle", "archived"),
            ("kept", "archived"),
            ("talking", "active")
        ])
    );
    assert_eq!(
        pairs(db, "SELECT id, conversation_id FROM messages ORDER BY id")
            .await
            .len(),
        3
    );
    assert_eq!(
        m.run("conversation_cleanup").await.unwrap(),
        json!({"conversations_archived": 0, "conversations_deleted": 0})
    );

    // Exact search has no index: nothing to rebuild, and the store's calls say so.
    assert!(k.store.rebuild_vector_indexes().await.unwrap().is_empty());
    let r = m.run("vector_store_maintenance").await.unwrap();
    assert_eq!(r["indexes"], json!([]), "{r}");
    k.store.vacuum_analyze().await.unwrap();
}
