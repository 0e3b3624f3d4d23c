//! Embedding against a real PostgreSQL + pgvector and Redis: the OpenAI-compatible provider
//! (batch limits, 429 + Retry-After, 5xx, 4xx, timeouts) against a local server speaking the
//! protocol; fan-in of a document's batches; the embedding cache; search through the HNSW index
//! (EXPLAIN, recall against exact search); the local model against sentence-transformers.
mod common;
#[path = "common/docs.rs"]
mod docs;
#[path = "common/embed.rs"]
mod embed;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use chatter_worker::jobs::JobError;
use chatter_worker::jobs::embed::limiter::Unlimited;
use chatter_worker::jobs::embed::local::{Local, LocalOptions};
use chatter_worker::jobs::embed::provider::{Provider, RequestLimits};
use chatter_worker::jobs::store::{DocumentStore, VectorStore, search_sql};
use common::wait_until;
use docs::{LIMIT, doc_kit, prose};
use embed::*;
use fake_openai::{FakeOpenAi, Reply, vector_of};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn texts(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag} text number {i}: {}", "word ".repeat(i % 7 + 1)))
        .collect()
}

#[tokio::test]
async fn openai_requests_stay_within_batch_limits_and_keep_order() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let mut config = openai_config(&fake, 16);
    config.limits = RequestLimits {
        max_inputs: 3,
        max_tokens: 40,
    };
    let e = embedder(&k, config.clone(), Arc::new(Unlimited), quick_settings()).await;
    let input = texts("limits", 11);
    let out = e
        .embed_texts(&input, &CancellationToken::new())
        .await
        .unwrap();
    for (t, v) in input.iter().zip(&out) {
        assert!(
            max_diff(v, &vector_of(t, 16)) < 1e-6,
            "vectors come back in input order"
        );
    }
    let provider = chatter_worker::jobs::embed::openai::OpenAi::new(config).unwrap();
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    let seen = fake.seen();
    assert!(
        seen.len() >= 4,
        "11 inputs at most 3 a request: {}",
        seen.len()
    );
    for s in &seen {
        assert!(
            s.inputs.len() <= 3,
            "{} inputs in one request",
            s.inputs.len()
        );
        let tokens: usize = s.inputs.iter().map(|t| bpe.encode_ordinary(t).len()).sum();
        assert!(tokens <= 40, "{tokens} tokens in one request");
        let ours: usize = s.inputs.iter().map(|t| provider.count_tokens(t)).sum();
        assert_eq!(ours, tokens, "the provider counts cl100k tokens");
        assert_eq!(s.authorization.as_deref(), Some("Bearer sk-test"));
    }
    let sent: Vec<String> = seen.iter().flat_map(|s| s.inputs.clone()).collect();
    assert_eq!(sent, input, "every input sent once, in order");
}

#[tokio::test]
async fn rate_limited_and_failing_requests_are_retried_and_bad_ones_fail_with_the_message() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let mut config = openai_config(&fake, 16);
    config.timeout = Duration::from_millis(500);
    let e = embedder(&k, config, Arc::new(Unlimited), quick_settings()).await;
    let cancel = CancellationToken::new();

    // 429 with Retry-After: 1 → waited, then answered.
    fake.script([Reply::Status(
        429,
        Some("1".into()),
        json!({"error": {"message": "Rate limit reached"}}),
    )]);
    let t = Instant::now();
    let out = e.embed_texts(&texts("429", 2), &cancel).await.unwrap();
    assert_eq!(out.len(), 2);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        t.elapsed()
    );
    assert_eq!(fake.requests(), 2);

    // 500 twice → retried after backoff.
    fake.script([
        Reply::Status(500, None, json!({"error": {"message": "boom"}})),
        Reply::Status(503, None, json!({})),
    ]);
    e.embed_texts(&texts("500", 2), &cancel).await.unwrap();
    assert_eq!(fake.requests(), 5);

    // A hang past the request timeout → retried.
    fake.script([Reply::Hang(Duration::from_secs(3))]);
    let t = Instant::now();
    e.embed_texts(&texts("hang", 2), &cancel).await.unwrap();
    assert_eq!(fake.requests(), 7);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "did not wait for the hang"
    );

    // 400 → final, with the provider's message; not retried.
    fake.script([Reply::Status(
        400,
        None,
        json!({"error": {"message": "This model's maximum context length is 8192 tokens"}}),
    )]);
    let err = e.embed_texts(&texts("400", 2), &cancel).await.unwrap_err();
    match err {
        JobError::Fatal(m) => {
            assert!(
                m.contains("400") && m.contains("maximum context length"),
                "{m}"
            )
        }
        other => panic!("expected a final error, got {other:?}"),
    }
    assert_eq!(fake.requests(), 8, "a 400 is not retried");

    // Retries spent → the job is retried later (not failed).
    fake.script((0..5).map(|_| Reply::Status(502, None, json!({}))));
    let err = e
        .embed_texts(&texts("spent", 1), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, JobError::Retry(_)), "{err:?}");
}

#[tokio::test]
async fn a_document_is_processed_once_its_last_batch_lands() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let e = default_embedder(&k, &fake).await;
    let (chunking, embedding) = pools(&k, &e, 7);
    let mut events = events(&k).await;
    let path = k.file("doc.txt", prose(60).as_bytes());
    let doc = k.ingest(&path, Some(40), Some(8)).await;
    assert_eq!(doc.status, "processed", "{:?}", doc.error);
    let n = doc.chunks.len() as i64;
    assert!(n > 14, "several batches: {n} chunks");
    assert_eq!(doc.chunk_count as i64, n);
    assert_eq!(vector_counts(&k, &e, &doc.id).await, (n, n, n));
    let completed = collect_completed(&mut events, &doc.id).await;
    assert_eq!(completed, 1, "document.processing_completed exactly once");
    // Chunk rows name the model.
    let (model, dims): (String, i32) = sqlx::query_as(
        "SELECT DISTINCT embedding_model, embedding_dimensions FROM document_chunks WHERE document_id = $1",
    )
    .bind(&doc.id)
    .fetch_one(&k.db)
    .await
    .unwrap();
    assert_eq!((model.as_str(), dims), ("fake-embedding-model", 16));
    chunking.stop().await;
    embedding.stop().await;
}

#[tokio::test]
async fn identical_text_is_embedded_once_across_documents_and_reruns() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let e = default_embedder(&k, &fake).await;
    let (chunking, embedding) = pools(&k, &e, 10);
    let text = prose(30);
    let a = k
        .ingest(&k.file("a.txt", text.as_bytes()), Some(40), Some(0))
        .await;
    assert_eq!(a.status, "processed", "{:?}", a.error);
    let after_first = fake.requests();
    let inputs_first: usize = fake.seen().iter().map(|s| s.inputs.len()).sum();
    assert!(after_first > 0);
    let unique: std::collections::HashSet<&str> =
        a.chunks.iter().map(|c| c.hash.as_str()).collect();
    assert_eq!(inputs_first, unique.len(), "each distinct text sent once");

    // Same text, another document (another owner) → no provider request.
    let id = k
        .store
        .register_document(&chatter_worker::jobs::store::NewDocument::new(
            "owner-2", "b.txt",
        ))
        .await
        .unwrap()
        .0;
    std::fs::write(k.root.join("b.txt"), &text).unwrap();
    k.q.enqueue(&k.job(&id, Some(40), Some(0))).await.unwrap();
    let b = k.wait_final(&id).await;
    assert_eq!(b.status, "processed", "{:?}", b.error);
    // And a re-run of the first document (new chunk ids, same texts).
    k.q.enqueue(&k.job(&a.id, Some(40), Some(0))).await.unwrap();
    wait_until(LIMIT, "the re-run to land", || async {
        let d = k.doc(&a.id).await;
        d.status == "processed"
            && d.chunks.first().map(|c| &c.id) != a.chunks.first().map(|c| &c.id)
    })
    .await;
    let n = a.chunks.len() as i64;
    wait_until(LIMIT, "every vector of the re-run", || async {
        vector_counts(&k, &e, &a.id).await == (n, n, n)
    })
    .await;
    assert_eq!(
        fake.requests(),
        after_first,
        "no provider request the second and third time"
    );
    chunking.stop().await;
    embedding.stop().await;
}

#[tokio::test]
async fn a_final_provider_error_fails_the_document_with_its_message() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let e = default_embedder(&k, &fake).await;
    let (chunking, embedding) = pools(&k, &e, 1000);
    fake.script([Reply::Status(
        400,
        None,
        json!({"error": {"message": "Invalid 'input': bad"}}),
    )]);
    let doc = k
        .ingest(&k.file("bad.txt", prose(5).as_bytes()), Some(40), Some(0))
        .await;
    assert_eq!(doc.status, "failed");
    let err = doc.error.unwrap();
    assert!(
        err.contains("Invalid 'input': bad") && err.contains("fake-embedding-model"),
        "{err}"
    );
    chunking.stop().await;
    embedding.stop().await;
}

async fn events(k: &docs::DocKit) -> redis::aio::PubSub {
    let client = redis::Client::open(k.h.url.as_str()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe(format!("{}:events", k.h.prefix))
        .await
        .unwrap();
    ps
}

/// `document.processing_completed` events for `doc` seen within a short quiet period.
async fn collect_completed(ps: &mut redis::aio::PubSub, doc: &str) -> usize {
    use futures::StreamExt;
    let mut n = 0;
    let mut stream = ps.on_message();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
        let payload: String = msg.get_payload().unwrap();
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        if v["type"] == "document.processing_completed" && v["document_id"] == doc {
            n += 1;
        }
    }
    n
}

/// Unit vectors shaped like text embeddings: a low intrinsic dimension (24 latent factors
/// projected into `dims`) plus a little noise, deterministic. (Uniformly random vectors have no
/// neighbours to speak of, which no ANN index, nor real text, is about.)
fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    const LATENT: usize = 24;
    let mut basis_rng = rand::rngs::StdRng::seed_from_u64(7);
    let basis: Vec<Vec<f32>> = (0..LATENT)
        .map(|_| {
            (0..dims)
                .map(|_| basis_rng.random_range(-1.0f32..1.0))
                .collect()
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut v = vec![0f32; dims];
            for b in &basis {
                let z: f32 = rng.random_range(-1.0f32..1.0);
                v.iter_mut().zip(b).for_each(|(x, y)| *x += z * y);
            }
            v.iter_mut()
                .for_each(|x| *x += rng.random_range(-0.1f32..0.1));
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

/// Largest difference between two vectors' components.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[tokio::test]
async fn search_uses_the_hnsw_index_and_recalls_what_exact_search_finds() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(384).await;
    let e = embedder(
        &k,
        openai_config(&fake, 384),
        Arc::new(Unlimited),
        quick_settings(),
    )
    .await;
    let t = e.tables().clone();
    let pool = &k.db;
    // 20,000 chunks in 4 documents of 2 owners, their vectors loaded in bulk, then the index
    // built again by the worker's own definition.
    let n = 20_000;
    let vectors = clustered(n, 384, 11);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP INDEX {}_hnsw",
        t.vectors
    )))
    .execute(pool)
    .await
    .unwrap();
    let mut docs = Vec::new();
    for d in 0..4 {
        let owner = if d % 2 == 0 { "owner-a" } else { "owner-b" };
        let id = k
            .store
            .register_document(&chatter_worker::jobs::store::NewDocument::new(
                owner,
                &format!("{d}.txt"),
            ))
            .await
            .unwrap()
            .0;
        docs.push((id, owner));
    }
    let ids: Vec<String> = (0..n).map(|_| ulid::Ulid::new().to_string()).collect();
    let doc_of = |i: usize| &docs[i % 4];
    sqlx::query(
        "INSERT INTO document_chunks (id, document_id, chunk_index, content, content_hash, token_count, start_char, end_char)
         SELECT id, doc, idx, 'chunk ' || idx, md5(id), 1, 0, 1
         FROM unnest($1::text[], $2::text[], $3::int[]) AS u (id, doc, idx)",
    )
    .bind(&ids)
    .bind((0..n).map(|i| doc_of(i).0.clone()).collect::<Vec<_>>())
    .bind((0..n as i32).collect::<Vec<_>>())
    .execute(pool)
    .await
    .unwrap();
    for start in (0..n).step_by(2000) {
        let end = (start + 2000).min(n);
        let vs: Vec<pgvector::Vector> = vectors[start..end]
            .iter()
            .map(|v| pgvector::Vector::from(v.clone()))
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (chunk_id, document_id, owner_id, content_hash, embedding)
             SELECT id, doc, owner, md5(id), v FROM unnest($1::text[], $2::text[], $3::text[], $4::vector[])
                 AS u (id, doc, owner, v)",
            t.vectors
        )))
        .bind(&ids[start..end])
        .bind((start..end).map(|i| doc_of(i).0.clone()).collect::<Vec<_>>())
        .bind((start..end).map(|i| doc_of(i).1.to_string()).collect::<Vec<_>>())
        .bind(vs)
        .execute(pool)
        .await
        .unwrap();
    }
    k.store.ensure_space(&t.space).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {}", t.vectors)))
        .execute(pool)
        .await
        .unwrap();

    // The plan: an index scan on the HNSW index, with and without filters.
    let q = pgvector::Vector::from(clustered(1, 384, 99).remove(0));
    for (owner, documents) in [(false, false), (true, false), (true, true)] {
        let sql = format!("EXPLAIN {}", search_sql(&t, owner, documents));
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .bind(q.clone())
            .bind(10i64);
        if owner {
            query = query.bind("owner-a");
        }
        if documents {
            query = query.bind(vec![docs[0].0.clone()]);
        }
        let plan = query.fetch_all(pool).await.unwrap().join("\n");
        assert!(
            plan.contains(&format!("Index Scan using {}_hnsw", t.vectors)),
            "filters owner={owner} documents={documents}: {plan}"
        );
    }

    // Recall@10 against exact search, over 50 queries.
    let queries = clustered(50, 384, 1234);
    let mut found = 0;
    for qv in &queries {
        let hits = k.store.search(&t, qv, 10, None, None, 100).await.unwrap();
        let mut exact: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (v.iter().zip(qv).map(|(a, b)| a * b).sum::<f32>(), i))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: std::collections::HashSet<&str> =
            exact[..10].iter().map(|(_, i)| ids[*i].as_str()).collect();
        found += hits
            .iter()
            .filter(|h| truth.contains(h.chunk_id.as_str()))
            .count();
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let recall = found as f64 / (queries.len() * 10) as f64;
    println!("recall@10 = {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");

    // Filters keep only what they name, and still fill k.
    let hits = k
        .store
        .search(&t, &queries[0], 10, Some("owner-b"), None, 100)
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| {
        docs.iter()
            .any(|(d, o)| *d == h.document_id && *o == "owner-b")
    }));
    let only = vec![docs[2].0.clone()];
    let hits = k
        .store
        .search(&t, &queries[0], 10, None, Some(&only), 100)
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.document_id == docs[2].0));
}

#[tokio::test]
async fn spaces_over_2000_dimensions_keep_full_vectors_and_index_halfvec() {
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(3072).await;
    let e = embedder(
        &k,
        openai_config(&fake, 3072),
        Arc::new(Unlimited),
        quick_settings(),
    )
    .await;
    let (chunking, embedding) = pools(&k, &e, 50);
    let doc = k
        .ingest(&k.file("big.txt", prose(10).as_bytes()), Some(40), Some(0))
        .await;
    assert_eq!(doc.status, "processed", "{:?}", doc.error);
    let first = &doc.chunks[0];
    let (dims, stored): (i32, pgvector::Vector) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT vector_dims(embedding), embedding FROM {} WHERE chunk_id = $1",
        e.tables().vectors
    )))
    .bind(&first.id)
    .fetch_one(&k.db)
    .await
    .unwrap();
    assert_eq!(dims, 3072);
    // f32 rounding of the normalisation only (halfvec would be off by ~1e-5 here) ...
    let d = max_diff(&stored.to_vec(), &vector_of(&first.content, 3072));
    assert!(d < 2e-6, "stored at full precision: off by {d}");
    // ... and the stored vector is not its own halfvec rounding.
    let rounded_away: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT embedding::halfvec(3072)::vector(3072) <> embedding FROM {} WHERE chunk_id = $1",
        e.tables().vectors
    )))
    .bind(&first.id)
    .fetch_one(&k.db)
    .await
    .unwrap();
    assert!(
        rounded_away,
        "the stored vector has more precision than halfvec"
    );
    let hits = e.search(&first.content, 3, None, None).await.unwrap();
    assert_eq!(hits[0].chunk_id, first.id);
    assert!((hits[0].score - 1.0).abs() < 1e-3, "{}", hits[0].score);
    chunking.stop().await;
    embedding.stop().await;
}

/// Cosine of each of the model's vectors with sentence-transformers' for the fixture's sentences
/// (bench/peers/sentence-transformers/reference.py): the lowest and the mean, and the runtime.
async fn agreement_with_sentence_transformers(
    var: &str,
    batch: Option<usize>,
) -> (f64, f64, &'static str) {
    let dir = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests through scripts/test.sh"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/minilm_reference.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let items = fixture["items"].as_array().unwrap();
    assert!(items.len() >= 100);
    let texts: Vec<String> = items
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_string())
        .collect();
    let options = LocalOptions {
        batch,
        ..Default::default()
    };
    let model = Local::load(std::path::Path::new(&dir), "all-MiniLM-L6-v2", &options).unwrap();
    assert_eq!(model.space().dimensions, 384);
    let runtime = model.runtime();
    let ours = tokio::task::spawn_blocking(move || model.embed_blocking(&texts))
        .await
        .unwrap()
        .unwrap();
    let cosines: Vec<f64> = items
        .iter()
        .zip(&ours)
        .map(|(item, v)| {
            let r: Vec<f64> = item["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let dot: f64 = r.iter().zip(v).map(|(a, b)| a * *b as f64).sum();
            let (nr, nv) = (
                r.iter().map(|x| x * x).sum::<f64>().sqrt(),
                v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt(),
            );
            assert!((nv - 1.0).abs() < 1e-4, "vector not normalised: norm {nv}");
            dot / (nr * nv)
        })
        .collect();
    let worst = cosines.iter().copied().fold(1.0, f64::min);
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    println!(
        "{var} ({runtime}): {} sentences, lowest cosine {worst:.6}, mean {mean:.6}",
        items.len()
    );
    (worst, mean, runtime)
}

#[tokio::test]
async fn the_local_model_agrees_with_sentence_transformers() {
    let (worst, _, runtime) =
        agreement_with_sentence_transformers("CW_TEST_MODEL_DIR", Some(16)).await;
    assert_eq!(runtime, "candle");
    assert!(worst >= 0.999, "F32: lowest cosine {worst}");
}

/// The int8 model (ONNX Runtime, int8 products) reports its own agreement, at its default batch
/// of one input (a pass's activations are quantised together, so a batch's neighbours move
/// each other a little) and in batches of 16.
#[tokio::test]
async fn the_int8_model_reports_its_agreement() {
    let (worst, mean, runtime) =
        agreement_with_sentence_transformers("CW_TEST_INT8_MODEL_DIR", None).await;
    assert_eq!(runtime, "onnxruntime");
    assert!(
        worst >= 0.95 && mean >= 0.99,
        "int8: lowest {worst}, mean {mean}"
    );
    let (worst, mean, _) =
        agreement_with_sentence_transformers("CW_TEST_INT8_MODEL_DIR", Some(16)).await;
    assert_eq!(runtime, "onnxruntime");
    assert!(
        worst >= 0.95 && mean >= 0.99,
        "int8: lowest {worst}, mean {mean}"
    );
}

#[tokio::test]
async fn a_batch_of_an_earlier_attempt_cannot_complete_the_document() {
    use chatter_worker::jobs::JobContext;
    use chatter_worker::jobs::kinds::documents::{EmbedChunksArgs, embed_job};
    let k = doc_kit().await;
    let fake = FakeOpenAi::start(16).await;
    let e = default_embedder(&k, &fake).await;
    let mut settings = k.settings();
    settings.embed = true;
    settings.embed_batch = 1000;
    let chunker = k.chunker(settings);
    let id = k.register(&k.file("doc.txt", prose(20).as_bytes())).await;
    let mut job = k.job(&id, Some(40), Some(0));
    job.max_retries = 3;
    let ctx = |job_id: &str, fence: u64| {
        JobContext::new(
            job_id.to_string(),
            fence as u32,
            fence,
            CancellationToken::new(),
            None,
        )
    };
    let batch = |fence: i64, ids: Vec<String>| {
        embed_job(&EmbedChunksArgs {
            document_id: id.clone(),
            chunk_ids: ids,
            run_fence: Some(fence),
        })
        .build()
    };
    // Attempt 1 chunks and embeds: processed.
    chunker.run(job.clone(), ctx(&job.id, 1)).await.unwrap();
    let ids: Vec<String> = k
        .doc(&id)
        .await
        .chunks
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let b1 = batch(1, ids.clone());
    e.run(b1.clone(), ctx(&b1.id, 1)).await.unwrap();
    assert_eq!(k.doc(&id).await.status, "processed");
    // Attempt 2 of the same job (a rescue after a lost ack): same chunk ids, vectors dropped.
    chunker.run(job.clone(), ctx(&job.id, 2)).await.unwrap();
    let d = k.doc(&id).await;
    assert_eq!(d.status, "processing");
    let n = ids.len() as i64;
    assert_eq!(vector_counts(&k, &e, &id).await, (n, 0, 0));
    // Attempt 1's batch delivered again: stale, writes nothing, completes nothing.
    let out = e.run(b1.clone(), ctx(&b1.id, 2)).await.unwrap();
    assert!(
        out["skipped"].as_str().unwrap_or("").contains("claim 2"),
        "{out}"
    );
    assert_eq!(k.doc(&id).await.status, "processing");
    assert_eq!(vector_counts(&k, &e, &id).await, (n, 0, 0));
    // Attempt 2's own batch completes it, from the cache.
    let before = fake.requests();
    let b2 = batch(2, ids);
    e.run(b2.clone(), ctx(&b2.id, 1)).await.unwrap();
    assert_eq!(k.doc(&id).await.status, "processed");
    assert_eq!(vector_counts(&k, &e, &id).await, (n, n, n));
    assert_eq!(fake.requests(), before, "texts came from the cache");
}

#[tokio::test]
async fn the_shared_limit_counts_tokens_and_requests_in_a_sliding_window() {
    use chatter_worker::backend::Backend;
    use chatter_worker::jobs::embed::limiter::{LimitError, RateLimiter};
    use chatter_worker::ratelimit::{Limits, SharedLimiter};
    let h = common::setup().await;
    let backend = chatter_worker::queue::RedisBackend::new(&h.url, &h.prefix, h.conn.clone());
    let limits = Limits {
        window: Duration::from_millis(1000),
        requests: Some(3),
        tokens: Some(100),
    };
    let a = SharedLimiter::new(backend.rate_log(), limits);
    // A second process's limiter on the same account shares the budget.
    let b = SharedLimiter::new(backend.rate_log(), limits);
    assert_eq!(a.try_take("acct", 60).await.unwrap(), None);
    let wait = b
        .try_take("acct", 50)
        .await
        .unwrap()
        .expect("60 + 50 > 100 tokens");
    assert!(
        wait > Duration::from_millis(900) && wait <= Duration::from_millis(1001),
        "{wait:?}"
    );
    assert_eq!(b.try_take("acct", 40).await.unwrap(), None, "60 + 40 fits");
    let wait = a
        .try_take("acct", 1)
        .await
        .unwrap()
        .expect("100 tokens used");
    assert!(wait <= Duration::from_millis(1001));
    assert_eq!(
        a.try_take("other", 10).await.unwrap(),
        None,
        "accounts are apart"
    );
    assert!(matches!(
        a.try_take("acct", 101).await,
        Err(LimitError::TooLarge(_))
    ));
    tokio::time::sleep(wait).await;
    // The first grant left the window: the 60 tokens are free again.
    assert_eq!(a.try_take("acct", 60).await.unwrap(), None);
    // Once everything has left it: 3 requests per window, whatever their tokens.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(a.try_take("acct", 0).await.unwrap(), None);
    }
    assert!(
        a.try_take("acct", 0).await.unwrap().is_some(),
        "3 requests per window"
    );
}
