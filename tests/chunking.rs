//! `chunk_document` against real PostgreSQL and Redis: every format extracts known text, the
//! chunk invariants hold (tiktoken-rs counts), bad inputs fail with a message naming the problem
//! and leave no chunks while the pool goes on, re-runs and retries never double chunks or
//! embedding batches, URL sources go through the SSRF guard, and events are published.
mod common;
#[path = "common/docs.rs"]
mod docs;

use chatter_worker::jobs::JobContext;
use chatter_worker::jobs::chunk::guard::Guard;
use chatter_worker::jobs::chunk::tokenizer::Tokenizer;
use chatter_worker::jobs::kinds::documents::{EMBED_CHUNKS, EmbedChunksArgs};
use docs::{DocKit, LIMIT, doc_kit, docx, pdf, pdf_self_drawing_form, prose};
use futures::StreamExt;
use serde_json::Value;
use std::collections::HashSet;
use tokio_util::sync::CancellationToken;

/// (file name, bytes, document_type, text it must contain, text it must not contain)
type FormatCase = (
    &'static str,
    Vec<u8>,
    &'static str,
    Vec<&'static str>,
    Vec<&'static str>,
);

#[tokio::test]
async fn every_format_extracts_its_known_text() {
    let k = doc_kit().await;
    let pool = k.pool(k.settings());
    let cases: Vec<FormatCase> = vec![
        (
            "notes.txt",
            "Plain utf-8 text: naïve café, 東京.\n\nSecond paragraph.".into(),
            "text",
            vec!["naïve café, 東京", "Second paragraph."],
            vec![],
        ),
        (
            "legacy.txt",
            b"Windows text: caf\xe9 \x93quoted\x94 \x80 5".to_vec(),
            "text",
            vec!["café “quoted” € 5"],
            vec![],
        ),
        (
            "guide.md",
            "# Title\n\nSome *markdown* text.\n\n## Part two\n\n- item one\n- item two\n".into(),
            "markdown",
            vec!["# Title", "## Part two", "- item two"],
            vec![],
        ),
        (
            "page.html",
            "<html><head><title>Page title</title><style>.x{color:red}</style>\
             <script>var secret = 1;</script></head><body><h1>Heading</h1>\
             <p>Visible <b>bold</b> text.</p><noscript>nojs</noscript></body></html>"
                .into(),
            "html",
            vec!["Page title", "Heading", "Visible bold text."],
            vec!["secret", "color:red", "nojs"],
        ),
        (
            "report.pdf",
            pdf(&["Hello PDF World", "Second line of the report"]),
            "pdf",
            vec!["Hello PDF World", "Second line of the report"],
            vec![],
        ),
        (
            "letter.docx",
            docx(&["Dear reader,", "Tom & Jerry <3 docx."], 0),
            "docx",
            vec!["Dear reader,\nTom & Jerry <3 docx."],
            vec!["<w:"],
        ),
        (
            "table.csv",
            "name,city\nAda,London\n\"Lovelace, A.\",\"New\nYork\"\n".into(),
            "csv",
            vec![
                "name: Ada; city: London",
                "name: Lovelace, A.; city: New\nYork",
            ],
            vec![],
        ),
        (
            "data.json",
            r#"{"title": "JSON doc", "tags": ["alpha", 7, {"deep": "beta"}], "ok": true}"#.into(),
            "json",
            vec!["JSON doc\nalpha\nbeta"],
            vec!["true", "7"],
        ),
    ];
    let mut ids = Vec::new();
    for (name, bytes, ..) in &cases {
        let id = k.register(&k.file(name, bytes)).await;
        k.q.enqueue(&k.job(&id, Some(64), Some(8))).await.unwrap();
        ids.push(id);
    }
    for ((name, _, kind, has, lacks), id) in cases.iter().zip(&ids) {
        let d = k.wait_final(id).await;
        assert_eq!(d.status, "processed", "{name}: {:?}", d.error);
        assert_eq!(d.document_type, *kind, "{name}");
        for s in has {
            assert!(d.text.contains(s), "{name}: {s:?} not in {:?}", d.text);
        }
        for s in lacks {
            assert!(
                !d.text.contains(s),
                "{name}: {s:?} leaked into {:?}",
                d.text
            );
        }
        d.check_invariants(64, 8);
    }
    pool.stop().await;
}

#[tokio::test]
async fn chunk_invariants_hold_on_long_text_and_markdown() {
    let k = doc_kit().await;
    let pool = k.pool(k.settings());
    let text = prose(400);
    let mut md = String::new();
    for (i, para) in prose(120).split("\n\n").enumerate() {
        if i % 7 == 0 {
            md.push_str(&format!("## Section {i}\n\n"));
        }
        md.push_str(para);
        md.push_str("\n\n");
    }
    let plain = k.file("long.txt", text.as_bytes());
    let mark = k.file("long.md", md.as_bytes());
    for (max, overlap) in [(32, 8), (200, 40), (1000, 0)] {
        let d = k.ingest(&plain, Some(max), Some(overlap)).await;
        assert_eq!(d.status, "processed", "{:?}", d.error);
        d.check_invariants(max, overlap);
        let d = k.ingest(&mark, Some(max), Some(overlap)).await;
        d.check_invariants(max, overlap);
        if max == 200 {
            // markdown-aware: chunks end where a section starts
            let chars: Vec<char> = d.text.chars().collect();
            let at_heading = d
                .chunks
                .iter()
                .filter(|c| {
                    let after: String = chars[c.end..chars.len().min(c.end + 20)].iter().collect();
                    after.trim_start().starts_with("## Section")
                })
                .count();
            assert!(
                at_heading >= 10,
                "only {at_heading} chunks end at a heading"
            );
        }
    }
    // The document's own chunk_size / chunk_overlap (Chatter's characters, 4 a token) by default.
    let d = k.ingest(&plain, None, None).await;
    d.check_invariants(250, 50);
    assert!(
        d.chunks.iter().any(|c| c.tokens > 200),
        "chunks use the 250-token budget"
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_local_tokenizer_json_sizes_the_chunks() {
    let k = doc_kit().await;
    // A word-level tokenizer.json written here: one token per whitespace-separated word.
    let path = k.root.join("tokenizer.json");
    let vocab: serde_json::Map<String, Value> = prose(50)
        .split_whitespace()
        .chain(["[UNK]"])
        .collect::<HashSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), Value::from(i)))
        .collect();
    let tj = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(&path, tj.to_string()).unwrap();
    let mut s = k.settings();
    s.tokenizer = Tokenizer::from_file(&path).unwrap();
    let pool = k.pool(s);
    let d = k
        .ingest(
            &k.file("words.txt", prose(60).as_bytes()),
            Some(20),
            Some(5),
        )
        .await;
    assert_eq!(d.status, "processed", "{:?}", d.error);
    for c in &d.chunks {
        assert_eq!(
            c.tokens as usize,
            c.content.split_whitespace().count(),
            "{:?}",
            c.content
        );
        assert!(c.tokens <= 20);
    }
    assert!(d.chunks.iter().filter(|c| c.tokens >= 15).count() * 2 >= d.chunks.len());
    pool.stop().await;
}

#[tokio::test]
async fn bad_inputs_fail_naming_the_problem_and_the_worker_goes_on() {
    let k = doc_kit().await;
    let mut s = k.settings();
    // keep the zip bomb small to build: 30 MB of spaces packs to ~30 kB (ratio ~1000)
    s.limits.max_zip_ratio = 100;
    let pool = k.pool(s);
    let good_pdf = pdf(&["fine"]);
    let good_docx = docx(&["fine"], 0);
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big = k.root.join("huge.txt");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(60_000_000)
        .unwrap();
    let outside = std::env::temp_dir().join(format!("cw-outside-{}.txt", k.schema));
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, k.root.join("link.txt")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            k.file(
                "corrupt.pdf",
                &[&good_pdf[..9], b"garbage that is no pdf at all"].concat(),
            ),
            "corrupt PDF",
        ),
        (
            k.file("truncated.docx", &good_docx[..good_docx.len() / 2]),
            "corrupt DOCX",
        ),
        (
            k.file("bomb.docx", &docx(&["boom"], 30_000_000)),
            "zip bomb",
        ),
        (k.file("garbage.txt", &garbage), "binary content"),
        (k.file("empty.txt", b""), "empty file"),
        (k.file("blank.txt", b"   \n\n  "), "no text found"),
        (
            "huge.txt".into(),
            "over the limit of 50000000 bytes (50.0 MB)",
        ),
        ("../../../etc/passwd".into(), "outside the storage root"),
        (outside.display().to_string(), "outside the storage root"),
        ("link.txt".into(), "outside the storage root"),
        ("missing.txt".into(), "not found"),
        (
            k.file("recursive.pdf", &pdf_self_drawing_form()),
            "the extractor crashed on it",
        ),
        (
            "http://127.0.0.1:9/doc.txt".into(),
            "address 127.0.0.1 is loopback",
        ),
        ("http://[::1]/doc.txt".into(), "address ::1 is loopback"),
        (
            "http://169.254.169.254/latest/meta-data".into(),
            "is link-local",
        ),
        ("ftp://example.com/doc.txt".into(), "not http or https"),
    ];
    let mut ids = Vec::new();
    for (path, _) in &cases {
        let id = k.register(path).await;
        k.q.enqueue(&k.job(&id, None, None)).await.unwrap();
        ids.push(id);
    }
    for ((path, want), id) in cases.iter().zip(&ids) {
        let d = k.wait_final(id).await;
        assert_eq!(d.status, "failed", "{path}");
        let err = d.error.clone().unwrap_or_default();
        assert!(err.contains(want), "{path}: {err:?} does not say {want:?}");
        assert!(
            d.chunks.is_empty() && d.chunk_count == 0,
            "{path} left chunks"
        );
        let rec = k.q.show(&d_job(&k, id).await).await.unwrap().unwrap();
        assert_eq!(
            rec.status.as_str(),
            "failed",
            "{path}: the job is dead-lettered"
        );
    }
    // the same pool still processes good documents
    let d = k
        .ingest(
            &k.file("after.txt", b"Still working after all that."),
            None,
            None,
        )
        .await;
    assert_eq!(d.status, "processed");
    pool.stop().await;
    let _ = std::fs::remove_file(outside);
}

/// The job id of the first job enqueued for document `id` (tests enqueue one per document).
async fn d_job(k: &DocKit, id: &str) -> String {
    let dead = k.q.dead_list(0, 1000).await.unwrap();
    dead.into_iter()
        .find(|r| {
            r.job
                .as_ref()
                .and_then(|j| j.kwargs.get("document_id"))
                .and_then(Value::as_str)
                == Some(id)
        })
        .map(|r| r.id)
        .unwrap_or_default()
}

#[tokio::test]
async fn rerunning_a_document_replaces_its_chunks() {
    let k = doc_kit().await;
    let pool = k.pool(k.settings());
    let path = k.file("doc.txt", prose(40).as_bytes());
    let first = k.ingest(&path, Some(50), Some(10)).await;
    let id = first.id.clone();
    // edit the file and run the same document again
    std::fs::write(k.root.join("doc.txt"), prose(60)).unwrap();
    k.q.enqueue(&k.job(&id, Some(50), Some(10))).await.unwrap();
    common::wait_until(LIMIT, "the re-run", || async {
        let d = k.doc(&id).await;
        d.status == "processed" && d.chunks.len() != first.chunks.len()
    })
    .await;
    let second = k.doc(&id).await;
    second.check_invariants(50, 10);
    let old: HashSet<_> = first.chunks.iter().map(|c| c.id.clone()).collect();
    assert!(
        second.chunks.iter().all(|c| !old.contains(&c.id)),
        "old chunks remain"
    );
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM document_chunks WHERE document_id = $1")
            .bind(&id)
            .fetch_one(&k.db)
            .await
            .unwrap();
    assert_eq!(rows as usize, second.chunks.len(), "exactly one set");
    pool.stop().await;
}

#[tokio::test]
async fn a_retried_chunk_job_never_doubles_chunks_and_enqueues_each_attempts_batches_once() {
    let k = doc_kit().await;
    let mut s = k.settings();
    s.embed = true;
    s.embed_batch = 7;
    let chunker = k.chunker(s);
    let id = k.register(&k.file("doc.txt", prose(30).as_bytes())).await;
    let mut job = k.job(&id, Some(40), Some(0));
    job.max_retries = 3;
    let run = |attempt: u32| {
        let ctx = JobContext::new(
            job.id.clone(),
            attempt,
            attempt as u64,
            CancellationToken::new(),
            None,
        );
        chunker.run(job.clone(), ctx)
    };
    let first = run(1).await.unwrap();
    let after_first = k.doc(&id).await;
    let emb = k.h.queue("embedding");
    let batches = after_first.chunks.len().div_ceil(7);
    assert_eq!(emb.stats().await.unwrap().ready as usize, batches);
    // a retry or a rescued run of the same job (claim 2): same chunk ids; its own batches (the
    // rewrite dropped the first attempt's vectors, whose batches are now stale), and a second
    // delivery of that claim's batches enqueues nothing more
    let second = run(2).await.unwrap();
    run(2).await.unwrap();
    let d = k.doc(&id).await;
    assert_eq!(first, second);
    assert_eq!(
        d.status, "processing",
        "embedding still owes the final status"
    );
    let ids: Vec<_> = d.chunks.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        ids,
        after_first
            .chunks
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    );
    let stats = emb.stats().await.unwrap();
    assert_eq!(
        stats.ready as usize,
        2 * batches,
        "one job per batch and attempt, none doubled"
    );
    assert_eq!(first["embed_jobs"], batches);
    // the batches name every chunk once, in order
    let mut named = Vec::new();
    for i in 0..batches {
        // the key: job id, batch number, and a digest of the batch's chunk ids
        let batch = &ids[i * 7..ids.len().min(i * 7 + 7)];
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(batch.join(",")));
        let key = format!("embed:{}:2:{i}:{}", job.id, &digest[..16]);
        let probe = chatter_worker::jobs::kinds::documents::embed_job(&EmbedChunksArgs {
            document_id: id.clone(),
            chunk_ids: vec![ids[0].clone()],
            run_fence: None,
        })
        .idempotency_key(key)
        .build();
        let got = emb.enqueue(&probe).await.unwrap();
        assert!(!got.created, "batch {i} exists under its key");
        let rec = emb.show(&got.id).await.unwrap().unwrap();
        assert_eq!(rec.function_name.as_deref(), Some(EMBED_CHUNKS));
        let args: EmbedChunksArgs = rec.job.unwrap().kwargs_as().unwrap();
        assert_eq!(args.run_fence, Some(2));
        named.extend(args.chunk_ids);
    }
    assert_eq!(named, ids);
}

#[tokio::test]
async fn url_sources_go_through_the_guard_after_redirects() {
    use axum::response::Redirect;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/doc.html",
            get(|| async { axum::response::Html("<p>Fetched over HTTP.</p>") }),
        )
        .route(
            "/meta",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data") }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/doc.html") }))
        .route(
            "/gone",
            get(|| async { (axum::http::StatusCode::NOT_FOUND, "no") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let k = doc_kit().await;
    let mut s = k.settings();
    s.source.guard = Guard::new(vec!["127.0.0.1/32".parse().unwrap()]);
    let pool = k.pool(s);
    let ok = k
        .ingest(&format!("http://{addr}/doc.html"), None, None)
        .await;
    assert_eq!(
        (ok.status.as_str(), ok.document_type.as_str()),
        ("processed", "html")
    );
    assert_eq!(ok.text, "Fetched over HTTP.");
    let hop = k
        .ingest(&format!("http://localhost:{}/hop", addr.port()), None, None)
        .await;
    assert_eq!(hop.status, "processed", "{:?}", hop.error);
    let meta = k.ingest(&format!("http://{addr}/meta"), None, None).await;
    assert_eq!(meta.status, "failed");
    let err = meta.error.unwrap();
    assert!(
        err.contains("169.254.169.254") && err.contains("link-local"),
        "{err}"
    );
    let gone = k.ingest(&format!("http://{addr}/gone"), None, None).await;
    assert!(gone.error.unwrap().contains("HTTP 404"));
    pool.stop().await;

    // without the allowance, the loopback server itself is refused, by address and by name
    let pool = k.pool(k.settings());
    for url in [
        format!("http://{addr}/doc.html"),
        format!("http://localhost:{}/doc.html", addr.port()),
    ] {
        let d = k.ingest(&url, None, None).await;
        assert_eq!(d.status, "failed", "{url}");
        assert!(d.error.unwrap().contains("loopback"), "{url}");
    }
    pool.stop().await;
}

#[tokio::test]
async fn document_and_progress_events_are_published() {
    let k = doc_kit().await;
    let client = redis::Client::open(k.h.url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(k.q.keys().events_channel()).await.unwrap();
    let pool = k.pool(k.settings());
    let good = k.ingest(&k.file("a.txt", b"Some text."), None, None).await;
    let bad = k.ingest(&k.file("b.txt", b""), None, None).await;
    let mut seen = Vec::new();
    let mut stream = pubsub.on_message();
    let wanted = |seen: &Vec<(String, String)>| {
        [
            ("document.processing_started", &good.id),
            ("document.processing_progress", &good.id),
            ("document.processing_completed", &good.id),
            ("document.processing_failed", &bad.id),
        ]
        .iter()
        .all(|(t, id)| seen.contains(&(t.to_string(), id.to_string())))
            && seen.iter().any(|(t, _)| t == "job.progress")
    };
    while !wanted(&seen) {
        let msg = tokio::time::timeout(LIMIT, stream.next())
            .await
            .unwrap()
            .unwrap();
        let e: Value = serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
        if e["type"] != "job.progress" {
            assert_eq!(e["owner_id"], "owner-1", "{e}");
        }
        let doc = e["document_id"].as_str().unwrap_or_default().to_string();
        seen.push((e["type"].as_str().unwrap().to_string(), doc));
    }
    pool.stop().await;
}

#[tokio::test]
async fn chunk_count_and_extraction_time_limits_fail_the_document() {
    let k = doc_kit().await;
    let mut s = k.settings();
    s.max_chunks = 5;
    let pool = k.pool(s);
    let d = k
        .ingest(&k.file("many.txt", prose(40).as_bytes()), Some(20), Some(0))
        .await;
    assert_eq!(d.status, "failed");
    assert!(d.error.unwrap().contains("more than the limit of 5 chunks"));
    assert!(d.chunks.is_empty());
    pool.stop().await;

    let mut s = k.settings();
    s.extract_timeout = std::time::Duration::from_micros(1);
    let pool = k.pool(s);
    let d = k
        .ingest(&k.file("slow.txt", prose(2000).as_bytes()), None, None)
        .await;
    assert_eq!(d.status, "failed");
    assert!(
        d.error
            .unwrap()
            .contains("extraction took longer than the limit")
    );
    pool.stop().await;
}

#[tokio::test]
async fn a_run_that_lost_the_document_changes_nothing() {
    use chatter_worker::jobs::store::documents::Extracted;
    use chatter_worker::jobs::store::{DocumentStore, Run, StoreError};
    let k = doc_kit().await;
    let id = k.register("x.txt").await;
    let old = Run {
        job_id: ulid::Ulid::new().to_string(),
        fence: 1,
    };
    let new = Run {
        job_id: old.job_id.clone(),
        fence: 2,
    };
    k.store.start_processing(&id, &old).await.unwrap().unwrap();
    // the lease moved: a rescued run of the same job took the document over
    k.store.start_processing(&id, &new).await.unwrap().unwrap();
    let text = Extracted {
        text: "t".into(),
        document_type: "text".into(),
        ..Default::default()
    };
    let stale = k.store.replace_chunks(&id, &old, &text, &[], true).await;
    assert!(
        matches!(stale, Err(StoreError::Superseded { fence: 2, .. })),
        "{stale:?}"
    );
    let stale = k.store.fail_document(&id, &old, "late failure").await;
    assert!(matches!(stale, Err(StoreError::Superseded { .. })));
    k.store
        .replace_chunks(&id, &new, &text, &[], true)
        .await
        .unwrap();
    let d = k.doc(&id).await;
    assert_eq!((d.status.as_str(), d.error), ("processed", None));
}

#[tokio::test]
async fn file_documents_need_a_storage_root() {
    let k = doc_kit().await;
    let mut s = k.settings();
    s.source.storage_root = None;
    let pool = k.pool(s);
    let d = k.ingest(&k.file("a.txt", b"text"), None, None).await;
    assert_eq!(d.status, "failed");
    assert!(d.error.unwrap().contains("no storage root is configured"));
    pool.stop().await;
}
