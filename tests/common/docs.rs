//! Document test kit: a PostgreSQL schema per test (migrated), a storage root per test, fixture
//! files of every format generated here (licence-clean by construction), a chunking pool, and
//! the chunk invariants every test checks.
#![allow(dead_code)]

use crate::common::{Harness, PoolHandle, pool_config, setup, wait_until};
use chatter_worker::jobs::chunk::extractor::Extractor;
use chatter_worker::jobs::chunk::{ChunkSettings, Chunker};
use chatter_worker::jobs::kinds::documents::{ChunkDocumentArgs, chunk_job};
use chatter_worker::jobs::store::{DocumentStore, NewDocument, Store};
use chatter_worker::jobs::{Job, Registry};
use chatter_worker::outbox::BackendOutbox;
use chatter_worker::queue::{QueueOptions, RedisBackend, RedisQueue};
use sqlx::Row;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const LIMIT: Duration = Duration::from_secs(60);

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run the tests through scripts/test.sh")
}

pub struct DocKit {
    pub h: Harness,
    pub store: Store,
    /// A pool of its own on this test's schema, for reading the database in assertions (the
    /// store keeps its pool to itself).
    pub db: sqlx::PgPool,
    /// The database URL selecting this test's schema (for worker processes).
    pub url: String,
    pub schema: String,
    pub root: PathBuf,
    pub q: RedisQueue,
}

pub async fn doc_kit() -> DocKit {
    let h = setup().await;
    let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let base = database_url();
    let admin = sqlx::PgPool::connect(&base)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema},public");
    let store = Store::connect(&url, 5).await.unwrap();
    store.migrate().await.unwrap();
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(&url)
        .await
        .unwrap();
    let root = std::env::temp_dir().join(format!("cw-docs-{schema}"));
    std::fs::create_dir_all(&root).unwrap();
    let q = h.queue("chunking");
    DocKit {
        h,
        store,
        db,
        url,
        schema,
        root,
        q,
    }
}

impl DocKit {
    /// The production settings: extraction in a child process of the real binary.
    pub fn settings(&self) -> ChunkSettings {
        let mut s = ChunkSettings::default();
        s.source.storage_root = Some(self.root.clone());
        s.extractor = Extractor::Subprocess {
            exe: env!("CARGO_BIN_EXE_chatter-worker").into(),
            memory_mb: 1024,
        };
        s
    }

    pub fn outbox(&self) -> Arc<BackendOutbox> {
        let backend = RedisBackend::new(&self.h.url, &self.h.prefix, self.h.conn.clone());
        Arc::new(BackendOutbox::new(
            Arc::new(backend),
            QueueOptions::default(),
        ))
    }

    pub fn chunker(&self, settings: ChunkSettings) -> Arc<Chunker> {
        Arc::new(Chunker::new(settings, self.store.clone(), self.outbox()).unwrap())
    }

    /// A chunking pool running `chunk_document` with these settings.
    pub fn pool(&self, settings: ChunkSettings) -> PoolHandle {
        let mut reg = Registry::builtin();
        self.chunker(settings).install(&mut reg);
        self.h.start_pool(&self.q, reg, pool_config(2))
    }

    /// Write a file under the storage root; returns its path relative to the root.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.root.join(name), bytes).unwrap();
        name.to_string()
    }

    /// A document as Chatter registers a URL: no hash yet (processing stores it when no other
    /// document of the owner has the same content).
    pub async fn register(&self, file_path: &str) -> String {
        let d = NewDocument::new("owner-1", file_path);
        self.store.register_document(&d).await.unwrap().0
    }

    pub fn job(&self, doc: &str, max_tokens: Option<usize>, overlap: Option<usize>) -> Job {
        chunk_job(&ChunkDocumentArgs {
            document_id: doc.into(),
            max_tokens,
            overlap_tokens: overlap,
        })
        .owner("owner-1")
        .max_retries(0)
        .build()
    }

    /// Register `file_path`, enqueue its job, wait until the document is final.
    pub async fn ingest(&self, file_path: &str, max: Option<usize>, overlap: Option<usize>) -> Doc {
        let id = self.register(file_path).await;
        self.q.enqueue(&self.job(&id, max, overlap)).await.unwrap();
        self.wait_final(&id).await
    }

    pub async fn wait_final(&self, id: &str) -> Doc {
        wait_until(LIMIT, "the document to be processed or failed", || async {
            self.doc(id).await.status.as_str() != "pending"
                && self.doc(id).await.status.as_str() != "processing"
        })
        .await;
        self.doc(id).await
    }

    pub async fn doc(&self, id: &str) -> Doc {
        let r = sqlx::query(
            "SELECT status, extracted_text, processing_error, chunk_count, document_type
             FROM documents WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.db)
        .await
        .unwrap();
        let chunks = sqlx::query(
            "SELECT id, chunk_index, content, content_hash, token_count, start_char, end_char
             FROM document_chunks WHERE document_id = $1 ORDER BY chunk_index",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await
        .unwrap()
        .iter()
        .map(|c| Chunk {
            id: c.get("id"),
            index: c.get("chunk_index"),
            content: c.get("content"),
            hash: c.get("content_hash"),
            tokens: c.get("token_count"),
            start: c.get::<i32, _>("start_char") as usize,
            end: c.get::<i32, _>("end_char") as usize,
        })
        .collect();
        Doc {
            id: id.into(),
            status: r.get("status"),
            text: r
                .get::<Option<String>, _>("extracted_text")
                .unwrap_or_default(),
            error: r.get("processing_error"),
            chunk_count: r.get("chunk_count"),
            document_type: r.get("document_type"),
            chunks,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub id: String,
    pub index: i32,
    pub content: String,
    pub hash: String,
    pub tokens: i32,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct Doc {
    pub id: String,
    pub status: String,
    pub text: String,
    pub error: Option<String>,
    pub chunk_count: i32,
    pub document_type: String,
    pub chunks: Vec<Chunk>,
}

impl Doc {
    /// The chunk invariants, with cl100k counted by tiktoken-rs (an independent implementation):
    /// every chunk ≤ `max` tokens and counted exactly; consecutive chunks share at most `overlap`
    /// tokens (and nine pairs in ten at least do share some when `overlap` > 0);
    /// `extracted_text[start_char..end_char] == content`; chunks cover the text in order; hashes
    /// are sha256; one chunk per index, `chunk_count` of them.
    pub fn check_invariants(&self, max: usize, overlap: usize) {
        let bpe = tiktoken_rs::cl100k_base_singleton();
        let chars: Vec<char> = self.text.chars().collect();
        assert_eq!(self.chunks.len(), self.chunk_count as usize, "chunk_count");
        assert!(!self.chunks.is_empty(), "no chunks for {}", self.id);
        let mut covered = 0usize;
        let mut apart = 0;
        for (i, c) in self.chunks.iter().enumerate() {
            assert_eq!(c.index as usize, i, "chunk indices run 0..n");
            let n = bpe.encode_ordinary(&c.content).len();
            assert_eq!(n, c.tokens as usize, "token_count of chunk {i}");
            assert!(n <= max, "chunk {i} has {n} tokens, max {max}");
            let slice: String = chars[c.start..c.end].iter().collect();
            assert_eq!(slice, c.content, "offsets of chunk {i}");
            assert_eq!(c.hash, sha256_hex(&c.content), "content_hash of chunk {i}");
            let gap: String = chars[covered.min(c.start)..c.start].iter().collect();
            assert!(
                gap.trim().is_empty(),
                "text before chunk {i} is not covered: {gap:?}"
            );
            if i > 0 {
                let prev = &self.chunks[i - 1];
                assert!(
                    c.start > prev.start,
                    "chunk {i} starts after chunk {}",
                    i - 1
                );
                if c.start < prev.end {
                    let shared: String = chars[c.start..prev.end].iter().collect();
                    let n = bpe.encode_ordinary(&shared).len();
                    assert!(
                        n <= overlap,
                        "chunks {} and {i} share {n} tokens > {overlap}",
                        i - 1
                    );
                } else {
                    apart += 1;
                }
            }
            covered = covered.max(c.end);
        }
        let rest: String = chars[covered..].iter().collect();
        assert!(
            rest.trim().is_empty(),
            "text after the last chunk is not covered"
        );
        // With an overlap, consecutive chunks share text, unless the next unit alone fills a chunk.
        if overlap > 0 {
            let pairs = self.chunks.len() - 1;
            assert!(
                apart * 10 <= pairs,
                "{apart} of {pairs} consecutive chunks share nothing"
            );
        }
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

// ---- fixtures -------------------------------------------------------------------------------

/// A one-page PDF whose page shows `lines` (Helvetica), with a correct xref table.
pub fn pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT /F1 12 Tf 72 720 Td 14 TL\n");
    for l in lines {
        content.push_str(&format!(
            "({}) Tj T*\n",
            l.replace('(', "\\(").replace(')', "\\)")
        ));
    }
    content.push_str("ET");
    pdf_objects(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .into(),
        stream(&content, ""),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    ])
}

/// A PDF whose page draws a form that draws itself: a parser without a depth limit recurses
/// until its stack overflows.
pub fn pdf_self_drawing_form() -> Vec<u8> {
    pdf_objects(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /XObject << /Fm0 5 0 R >> >> >>"
            .into(),
        stream("/Fm0 Do", ""),
        stream(
            "/Fm0 Do",
            "/Type /XObject /Subtype /Form /BBox [0 0 100 100] \
             /Resources << /XObject << /Fm0 5 0 R >> >>",
        ),
    ])
}

fn stream(content: &str, dict: &str) -> String {
    format!(
        "<< {dict} /Length {} >>\nstream\n{content}\nendstream",
        content.len()
    )
}

/// Objects 1..n in order, with a correct xref table and trailer.
fn pdf_objects(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A DOCX with one paragraph per entry of `paragraphs`; `pad` adds an entry of that many bytes
/// of spaces (compressing ~1000:1: a zip bomb when large).
pub fn docx(paragraphs: &[&str], pad: usize) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, body: &[u8]| {
        zip.start_file(name, opts).unwrap();
        zip.write_all(body).unwrap();
    };
    put(
        "[Content_Types].xml",
        br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
    );
    let body: String = paragraphs
        .iter()
        .map(|p| {
            format!(
                "<w:p><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>",
                xml_escape(p)
            )
        })
        .collect();
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    put("word/document.xml", doc.as_bytes());
    if pad > 0 {
        put("word/media/padding.bin", &vec![b' '; pad]);
    }
    zip.finish().unwrap().into_inner()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Paragraphs of varied prose (`n` of them), deterministic.
pub fn prose(n: usize) -> String {
    const WORDS: [&str; 24] = [
        "queue",
        "worker",
        "durable",
        "retry",
        "token",
        "chunk",
        "embedding",
        "vector",
        "lease",
        "fence",
        "schedule",
        "Ünïcödé",
        "naïve",
        "café",
        "東京",
        "データ",
        "résumé",
        "jalapeño",
        "priority",
        "backoff",
        "jitter",
        "document",
        "extract",
        "split",
    ];
    let mut out = String::new();
    let mut x: u64 = 42;
    for p in 0..n {
        let sentences = 2 + p % 5;
        for _ in 0..sentences {
            let words = 4 + (x % 14) as usize;
            for w in 0..words {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let word = WORDS[(x >> 33) as usize % WORDS.len()];
                if w == 0 {
                    let mut c = word.chars();
                    out.extend(c.next().map(|f| f.to_uppercase().collect::<String>()));
                    out.push_str(c.as_str());
                } else {
                    out.push(' ');
                    out.push_str(word);
                }
            }
            out.push_str(". ");
        }
        out.push_str("\n\n");
    }
    out
}
