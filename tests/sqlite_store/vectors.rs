//! The vectors role: spaces, the cache, fenced batches, and exact search checked against a
//! brute-force ranking and against pgvector.
use crate::kit::*;
use chatter_jobs::store::vectors::{BatchWrite, ChunkText, SpaceTables};
use chatter_jobs::store::{
    DocumentStatus, DocumentStore, NewDocument, Run, StoreError, VectorStore,
};

/// A search filter (owner, documents) and how many hits to ask for.
type Case<'a> = (Option<&'a str>, Option<Vec<String>>, usize);

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

/// Batches of one document finishing together serialise on the file's write lock: all are
/// written and exactly one sees the document complete.
#[tokio::test]
async fn concurrent_batches_complete_a_document_once() {
    let k = kit().await;
    let s = k.store.clone();
    let t = s.ensure_space(&space("race", 4)).await.unwrap();
    let (id, _) = s
        .register_document(&NewDocument::new("alice", "race.txt"))
        .await
        .unwrap();
    let r = run("race-job", 7);
    s.start_processing(&id, &r).await.unwrap().unwrap();
    s.replace_chunks(&id, &r, &extracted(""), &chunks("race", 12), false)
        .await
        .unwrap();
    let ids = s.chunk_ids(&id).await.unwrap();
    let texts = s.chunk_texts(&t, &id, &ids).await.unwrap();
    let mut tasks = Vec::new();
    for (i, batch) in texts.chunks(2).enumerate() {
        let (s, t, id, r) = (s.clone(), t.clone(), id.clone(), r.clone());
        let batch: Vec<(ChunkText, Vec<f32>)> = batch
            .iter()
            .map(|c| (c.clone(), vector(i as u64, 4)))
            .collect();
        tasks.push(tokio::spawn(async move {
            let current = |x: &Run, _: &ChunkText| *x == r;
            s.write_batch(&t, &id, &batch[0].0, &batch, &current).await
        }));
    }
    let mut completed = Vec::new();
    for task in tasks {
        match task.await.unwrap().unwrap() {
            BatchWrite::Written { rows, completed: c } => {
                assert_eq!(rows, 2);
                completed.extend(c);
            }
            stale => panic!("{stale:?}"),
        }
    }
    assert_eq!(completed, [12]);
    let doc = s.document(&id).await.unwrap().unwrap();
    assert_eq!(
        (doc.status, doc.chunk_count),
        (DocumentStatus::Processed, 12)
    );
}

/// Above 2,000 dimensions pgvector compares the `halfvec` cast: the embedded search too.
#[tokio::test]
async fn halfvec_space_search_as_postgres() {
    let k = kit().await;
    let (pg, db, schema) = pg().await;
    let sp = space("large-model", 2100);
    let (ts, tp) = (
        k.store.ensure_space(&sp).await.unwrap(),
        pg.ensure_space(&sp).await.unwrap(),
    );
    for i in 0..2u64 {
        embedded(&k.store, &ts, "alice", &format!("h{i}.txt"), 6, 40 + i).await;
        embedded(&pg, &tp, "alice", &format!("h{i}.txt"), 6, 40 + i).await;
    }
    for q in 0..3u64 {
        let query = vector(900 + q, 2100);
        let hs = k
            .store
            .search(&ts, &query, 5, None, None, 100)
            .await
            .unwrap();
        let hp = pg.search(&tp, &query, 5, None, None, 100).await.unwrap();
        let key = |h: &chatter_jobs::store::vectors::Hit| (h.content.clone(), h.chunk_index);
        assert_eq!(
            hs.iter().map(key).collect::<Vec<_>>(),
            hp.iter().map(key).collect::<Vec<_>>()
        );
        // Closer than the halfvec rounding itself moves a score (about 5e-6 here).
        for (a, b) in hs.iter().zip(&hp) {
            assert!(
                (a.score - b.score).abs() < 1e-6,
                "{} vs {}",
                a.score,
                b.score
            );
        }
    }
    drop_schema(&db, &schema).await;
}
