//! `bench embedding`: the local model's chunks/s next to sentence-transformers on the same
//! ~256-token chunks of real text (and how closely their vectors agree), then end-to-end
//! ingestion of real documents into pgvector by a worker process: documents/s, chunks/s and the
//! worker's peak RSS.
use super::args::EmbeddingBenchArgs;
use super::chunking::{Doc, default_sources, gather};
use crate::ingest::{self, IngestOptions};
use crate::queue::{self, QueueOptions, RedisQueue};
use chatter_jobs::chunk::extract::{DocType, ExtractLimits};
use chatter_jobs::chunk::split::{self, SplitParams};
use chatter_jobs::chunk::tokenizer::Tokenizer;
use chatter_jobs::embed::local::{Local, LocalOptions};
use chatter_jobs::registry::queues;
use chatter_jobs::store::Store;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct ModelResult {
    pub system: String,
    pub model_dir: String,
    pub chunks: usize,
    pub mean_tokens: f64,
    pub batch: Option<usize>,
    pub lanes: Option<usize>,
    pub rounds_s: Vec<f64>,
    pub chunks_per_s: f64,
    /// The process's resident set after the rounds (model, runtime and its buffers), MB.
    pub rss_mb: f64,
    /// Ours over sentence-transformers, chunks/s in the same run.
    pub ratio: Option<f64>,
    /// Cosine of our vector and the peer's, per chunk: the lowest and the mean.
    pub agreement_min: Option<f64>,
    pub agreement_mean: Option<f64>,
    /// Search agreement with the F32 model: each chunk as the query over the others, the
    /// share of the F32 top 10 that this model's top 10 also finds (mean over the queries).
    pub top10_overlap_with_f32: Option<f64>,
    #[serde(skip)]
    vectors: Vec<Vec<f32>>,
}

#[derive(Debug, Serialize)]
pub struct Ingestion {
    pub documents: usize,
    pub chunks: i64,
    pub text_bytes: usize,
    pub seconds: f64,
    pub documents_per_s: f64,
    pub chunks_per_s: f64,
    /// The worker process's peak resident set (VmHWM), MB.
    pub worker_peak_rss_mb: f64,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingReport {
    /// The F32 folder (candle) and, when fetched, the int8 ONNX folder (ONNX Runtime).
    pub ours: Vec<ModelResult>,
    pub peer: Option<serde_json::Value>,
    pub peer_error: Option<String>,
    /// The folder the end-to-end worker ran.
    pub ingestion_model_dir: String,
    pub ingestion: Option<Ingestion>,
    pub ingestion_error: Option<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Chunks of about `max_tokens` model tokens (the fullest first) from real text.
fn chunks(docs: &[Doc], dir: &Path, want: usize, max_tokens: usize) -> Result<Vec<String>, String> {
    let t = Tokenizer::from_file(&dir.join("tokenizer.json")).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for d in docs {
        let p = SplitParams {
            max_tokens,
            overlap_tokens: 0,
            markdown: d.kind == DocType::Markdown,
            max_chunks: usize::MAX,
        };
        let Ok(pieces) = split::split(&d.text, &t, p) else {
            continue;
        };
        out.extend(
            pieces
                .iter()
                .filter(|c| c.token_count * 10 >= max_tokens * 8)
                .map(|c| c.content.to_string()),
        );
        if out.len() >= want {
            out.truncate(want);
            return Ok(out);
        }
    }
    Err(format!(
        "only {} full chunks found; {want} wanted",
        out.len()
    ))
}

fn peer(
    a: &EmbeddingBenchArgs,
    dir: &Path,
    jsonl: &Path,
    vectors: &Path,
) -> Result<serde_json::Value, String> {
    super::run_peer("sentence-transformers", "embed.py", |cmd| {
        cmd.args(["--model", &dir.to_string_lossy()])
            .args(["--chunks", &jsonl.to_string_lossy()])
            .args(["--batch", &a.peer_batch.to_string()])
            .args(["--rounds", &a.rounds.to_string()])
            .args(["--out", &vectors.to_string_lossy()])
            .env("HF_HUB_OFFLINE", "1");
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Each vector as a query over the others: the mean share of `a`'s top k that `b`'s top k has.
fn top_k_overlap(a: &[Vec<f32>], b: &[Vec<f32>], k: usize) -> f64 {
    let top = |v: &[Vec<f32>], q: usize| -> Vec<usize> {
        let mut s: Vec<(f64, usize)> = (0..v.len())
            .filter(|&i| i != q)
            .map(|i| (cosine(&v[q], &v[i]), i))
            .collect();
        s.sort_by(|x, y| y.0.total_cmp(&x.0));
        s.iter().take(k).map(|x| x.1).collect()
    };
    let n = a.len().min(b.len());
    let shared: usize = (0..n)
        .map(|q| {
            let tb = top(b, q);
            top(a, q).iter().filter(|i| tb.contains(i)).count()
        })
        .sum();
    shared as f64 / (n * k.min(n.saturating_sub(1)).max(1)) as f64
}

/// The default F32 model folder (`scripts/fetch-model.sh` puts it there).
pub fn default_model_dir() -> PathBuf {
    models_cache().join("all-MiniLM-L6-v2")
}

/// The int8 ONNX folder (`scripts/fetch-model.sh int8`).
pub fn default_int8_dir() -> PathBuf {
    models_cache().join("all-MiniLM-L6-v2-int8")
}

fn models_cache() -> PathBuf {
    std::env::var("CW_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let base = std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
                });
            base.join("chatter-worker/models")
        })
}

/// The process's resident set now, MB.
fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Median chunks/s of `rounds` runs of one model folder over `texts` (after a warm-up batch).
async fn measure(
    a: &EmbeddingBenchArgs,
    dir: &Path,
    texts: &[String],
) -> Result<ModelResult, String> {
    let options = LocalOptions {
        batch: a.batch,
        lanes: a.lanes,
        onnxruntime: None,
    };
    let model = Local::load(dir, "bench", &options).map_err(|e| e.to_string())?;
    let counter = Tokenizer::from_file(&dir.join("tokenizer.json")).map_err(|e| e.to_string())?;
    let mean_tokens =
        texts.iter().map(|t| counter.count(t) as f64).sum::<f64>() / texts.len().max(1) as f64;
    let (texts, a, dir) = (texts.to_vec(), a.clone(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || {
        model.embed_blocking(&texts[..8.min(texts.len())])?;
        let mut rounds = Vec::new();
        let mut last = Vec::new();
        for _ in 0..a.rounds.max(1) {
            let t = Instant::now();
            last = model.embed_blocking(&texts)?;
            rounds.push(t.elapsed().as_secs_f64());
        }
        let m = median(&rounds);
        let system = match model.runtime() {
            "candle" => "chatter-worker local: candle 0.11, F32 safetensors",
            _ => "chatter-worker local: ONNX Runtime 1.32 (ort 2.0 rc), int8 ONNX",
        };
        Ok(ModelResult {
            system: system.into(),
            model_dir: dir.display().to_string(),
            chunks: texts.len(),
            mean_tokens,
            batch: a.batch,
            lanes: a.lanes,
            chunks_per_s: texts.len() as f64 / m,
            rounds_s: rounds,
            rss_mb: rss_mb(),
            ratio: None,
            agreement_min: None,
            agreement_mean: None,
            top10_overlap_with_f32: None,
            vectors: last,
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

pub async fn run(
    a: &EmbeddingBenchArgs,
    model_dir: Option<PathBuf>,
    redis_url: &str,
    database_url: Option<&str>,
) -> Result<EmbeddingReport, String> {
    let dir = model_dir.unwrap_or_else(default_model_dir);
    let work = match &a.corpus_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cw-embedding-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let limits = ExtractLimits::default();
    let want_bytes = ((a.ingest_mb.max(0.0) * 1e6) as usize).max(a.chunks * 2000);
    let docs = gather(&default_sources(), want_bytes, &limits);
    let texts = chunks(&docs, &dir, a.chunks, a.max_tokens)?;
    let jsonl = work.join("chunks.jsonl");
    let body: String = texts
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string() + "\n")
        .collect();
    std::fs::write(&jsonl, body).map_err(|e| e.to_string())?;

    // Ours: each runtime's folder in turn (one ONNX Runtime per process: the int8 folder last).
    let int8 = a.int8_dir.clone().unwrap_or_else(default_int8_dir);
    let mut ours = vec![measure(a, &dir, &texts).await?];
    if int8 != dir && int8.join("model.onnx").is_file() {
        ours.push(measure(a, &int8, &texts).await?);
    }

    if let [f32, rest @ ..] = &mut ours[..] {
        for m in rest {
            m.top10_overlap_with_f32 = Some(top_k_overlap(&f32.vectors, &m.vectors, 10));
        }
    }

    // The peer, on the same chunks.
    let peer_vectors = work.join("peer-vectors.json");
    let (peer, peer_error) = if a.no_peer {
        (None, None)
    } else {
        match peer(a, &dir, &jsonl, &peer_vectors) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        }
    };
    let theirs: Option<Vec<Vec<f32>>> = peer
        .as_ref()
        .and_then(|_| std::fs::read_to_string(&peer_vectors).ok())
        .and_then(|text| serde_json::from_str(&text).ok());
    let peer_rate = peer.as_ref().and_then(|p| p.get("chunks_per_s")?.as_f64());
    for m in &mut ours {
        m.ratio = peer_rate.map(|p| m.chunks_per_s / p);
        if let Some(theirs) = theirs.as_ref().filter(|t| t.len() == m.vectors.len()) {
            let c: Vec<f64> = m
                .vectors
                .iter()
                .zip(theirs)
                .map(|(a, b)| cosine(a, b))
                .collect();
            m.agreement_min = c.iter().copied().reduce(f64::min);
            m.agreement_mean = Some(c.iter().sum::<f64>() / c.len().max(1) as f64);
        }
    }

    // End to end, through a worker process, with the fastest folder (or the one asked for).
    let ingest_dir = a.ingest_model_dir.clone().unwrap_or_else(|| {
        ours.iter()
            .max_by(|x, y| x.chunks_per_s.total_cmp(&y.chunks_per_s))
            .map_or(dir.clone(), |m| PathBuf::from(&m.model_dir))
    });
    let (ingestion, ingestion_error) = match (a.ingest_mb > 0.0, database_url) {
        (false, _) => (None, None),
        (true, None) => (
            None,
            Some("no DATABASE_URL: end-to-end ingestion skipped".into()),
        ),
        (true, Some(url)) => {
            match ingest_corpus(a, &docs, &ingest_dir, &work, redis_url, url).await {
                Ok(i) => (Some(i), None),
                Err(e) => (None, Some(e)),
            }
        }
    };
    Ok(EmbeddingReport {
        ours,
        peer,
        peer_error,
        ingestion_model_dir: ingest_dir.display().to_string(),
        ingestion,
        ingestion_error,
    })
}

/// Peak resident set of a process, MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn ingest_corpus(
    a: &EmbeddingBenchArgs,
    docs: &[Doc],
    model_dir: &Path,
    work: &Path,
    redis_url: &str,
    database_url: &str,
) -> Result<Ingestion, String> {
    // A fresh schema and key prefix: the run neither sees nor touches anything else.
    let tag = format!("cwbench{}", std::process::id());
    let admin = Store::connect(database_url, 2)
        .await
        .map_err(|e| e.to_string())?;
    admin.create_schema(&tag).await.map_err(|e| e.to_string())?;
    let sep = if database_url.contains('?') { '&' } else { '?' };
    let url = format!("{database_url}{sep}options=-csearch_path%3D{tag},public");
    let root = work.join("documents");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let (mut text_bytes, mut n) = (0, 0);
    for d in docs {
        if text_bytes as f64 >= a.ingest_mb * 1e6 {
            break;
        }
        std::fs::write(root.join(format!("{n:06}.txt")), &d.text).map_err(|e| e.to_string())?;
        text_bytes += d.text.len();
        n += 1;
    }
    let mut toml = String::from("[embedding]\n");
    if let Some(b) = a.batch {
        toml += &format!("local_batch = {b}\n");
    }
    if let Some(l) = a.lanes {
        toml += &format!("local_lanes = {l}\n");
    }
    std::fs::write(work.join("worker.toml"), toml).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(exe)
        .args(["run", "--migrate", "--http-addr", "127.0.0.1:0"])
        .env("REDIS_URL", redis_url)
        .env("CW_PREFIX", &tag)
        .env("DATABASE_URL", &url)
        .env("CW_STORAGE_ROOT", &root)
        .env("CW_MODEL_DIR", model_dir)
        .env("CW_CONFIG", work.join("worker.toml"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id().unwrap_or(0);
    let store = Store::connect(&url, 4).await.map_err(|e| e.to_string())?;
    // Wait for the worker's migrations (in this run's schema).
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = format!("{tag}.embedding_spaces");
    while !store.has_table(&ready).await.unwrap_or(false) {
        if Instant::now() > deadline {
            return Err("the worker did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let conn = queue::connect(redis_url).await.map_err(|e| e.to_string())?;
    let q = RedisQueue::new(conn, &tag, queues::CHUNKING, QueueOptions::default());
    let options = IngestOptions {
        paths: vec![root.clone()],
        owner: "bench".into(),
        storage_root: root.clone(),
        wait: Some(Duration::from_secs(3600)),
        progress: false,
    };
    let started = Instant::now();
    let done = ingest::ingest(&options, &store, &q)
        .await
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let rss = peak_rss_mb(pid).unwrap_or(0.0);
    let _ = child.kill().await;
    let chunks = store.count_chunks().await.map_err(|e| e.to_string())?;
    let failed = done
        .iter()
        .filter(|d| d.status.map(|s| s.as_str()) != Some("processed"))
        .count();
    admin.drop_schema(&tag).await.map_err(|e| e.to_string())?;
    Ok(Ingestion {
        documents: done.len(),
        chunks,
        text_bytes,
        seconds,
        documents_per_s: done.len() as f64 / seconds,
        chunks_per_s: chunks as f64 / seconds,
        worker_peak_rss_mb: rss,
        failed,
    })
}
