//! `chatter-worker bench chunking`: extraction and token-aware splitting over real text found on
//! this machine (Debian's /usr/share/doc, the Rust toolchain's docs), and in the same run
//! langchain-text-splitters' RecursiveCharacterTextSplitter sized by the same tokenizer (cl100k)
//! over the very same extracted text (written to a corpus folder for it).
//!
//! Timed: extraction of the gathered files (source MB/s) and splitting of their text (text MB/s,
//! chunks/s), on one thread and on every core; the median of `rounds`. Not timed: the invariant
//! check over every chunk (size by the tokenizer's own count, offsets, order, coverage, overlap).
use super::args::ChunkingBenchArgs;
use chatter_jobs::chunk::extract::{self, DocType, ExtractLimits};
use chatter_jobs::chunk::split::{self, Piece, SplitParams};
use chatter_jobs::chunk::tokenizer::Tokenizer;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Debug, Serialize, Default)]
pub struct Throughput {
    pub threads: usize,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub chunks_per_s: f64,
    pub chunks: usize,
    /// Every round's seconds, the median above.
    pub rounds: Vec<f64>,
}

#[derive(Debug, Serialize, Default)]
pub struct Invariants {
    pub chunks: usize,
    pub over_max_tokens: usize,
    pub count_mismatches: usize,
    pub offset_mismatches: usize,
    pub out_of_order: usize,
    pub uncovered_text: usize,
    pub overlap_over_budget: usize,
    pub max_chunk_tokens: usize,
}

#[derive(Debug, Serialize)]
pub struct ChunkingReport {
    pub files: usize,
    pub source_bytes: usize,
    pub text_bytes: usize,
    pub by_type: Vec<(String, usize)>,
    pub corpus_dir: String,
    pub max_tokens: usize,
    pub overlap: usize,
    pub extract: Throughput,
    pub split_one_thread: Throughput,
    pub split_all_threads: Throughput,
    pub invariants: Invariants,
    pub peer: Option<serde_json::Value>,
    pub peer_error: Option<String>,
    /// Our split MB/s over the peer's, one thread and every core.
    pub ratio_one_thread: Option<f64>,
    pub ratio_all_threads: Option<f64>,
}

pub(crate) struct Doc {
    pub(crate) raw: Vec<u8>,
    pub(crate) kind: DocType,
    pub(crate) text: String,
}

pub(crate) fn default_sources() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/usr/share/doc")];
    if let Ok(home) = std::env::var("RUSTUP_HOME")
        .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.rustup")))
        && let Ok(entries) = std::fs::read_dir(Path::new(&home).join("toolchains"))
    {
        let mut tcs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        tcs.sort();
        v.extend(tcs.into_iter().map(|t| t.join("share/doc/rust/html")));
    }
    v
}

/// Files under `sources` (in path order) whose text extracts, until `want` text bytes.
pub(crate) fn gather(sources: &[PathBuf], want: usize, limits: &ExtractLimits) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut total = 0;
    let mut stack: Vec<PathBuf> = sources.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        if total >= want {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&p)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            children.sort();
            stack.extend(children.into_iter().rev());
            continue;
        }
        if !meta.is_file() || meta.len() > 50_000_000 {
            continue;
        }
        let Ok(raw) = std::fs::read(&p) else { continue };
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(kind) = extract::detect(&raw, &name) else {
            continue;
        };
        if let Ok(text) = extract::extract(&raw, kind, limits) {
            total += text.len();
            docs.push(Doc { raw, kind, text });
        }
    }
    docs
}

/// Run `f` over every document on `threads` threads; returns the summed counts.
fn parallel<F>(docs: &[Doc], threads: usize, f: F) -> usize
where
    F: Fn(&Doc) -> usize + Sync,
{
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = docs.get(i) else { break };
                    total.fetch_add(f(d), Ordering::Relaxed);
                }
            });
        }
    });
    total.into_inner()
}

fn timed<F>(rounds: usize, threads: usize, bytes: usize, mut run: F) -> Throughput
where
    F: FnMut() -> usize,
{
    let mut times = Vec::new();
    let mut chunks = 0;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        chunks = run();
        times.push(t.elapsed().as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let seconds = sorted[(sorted.len() - 1) / 2];
    Throughput {
        threads,
        seconds,
        mb_per_s: bytes as f64 / 1e6 / seconds,
        chunks_per_s: chunks as f64 / seconds,
        chunks,
        rounds: times,
    }
}

/// Check every chunk of one document; adds to `inv`.
fn check(text: &str, chunks: &[Piece<'_>], t: &Tokenizer, p: &SplitParams, inv: &mut Invariants) {
    // char offset → byte offset, walking forward (starts only increase)
    let (mut at_char, mut at_byte) = (0usize, 0usize);
    let mut starts = Vec::with_capacity(chunks.len());
    for c in chunks {
        inv.chunks += 1;
        let n = t.count(c.content);
        inv.max_chunk_tokens = inv.max_chunk_tokens.max(n);
        inv.over_max_tokens += usize::from(n > p.max_tokens);
        inv.count_mismatches += usize::from(n != c.token_count);
        if c.start_char < at_char {
            inv.out_of_order += 1;
            return;
        }
        while at_char < c.start_char && at_byte < text.len() {
            at_byte += text[at_byte..].chars().next().map_or(1, char::len_utf8);
            at_char += 1;
        }
        starts.push(at_byte);
        let ok = text[at_byte..].starts_with(c.content)
            && text[at_byte..at_byte + c.content.len()].chars().count()
                == c.end_char - c.start_char;
        inv.offset_mismatches += usize::from(!ok);
    }
    let mut covered = 0;
    for (c, &s) in chunks.iter().zip(&starts) {
        if s > covered && !text[covered..s].trim().is_empty() {
            inv.uncovered_text += 1;
        }
        if s < covered && t.count(&text[s..covered]) > p.overlap_tokens {
            inv.overlap_over_budget += 1;
        }
        covered = covered.max(s + c.content.len());
    }
    if !text[covered..].trim().is_empty() {
        inv.uncovered_text += 1;
    }
}

fn peer(a: &ChunkingBenchArgs, corpus: &Path) -> Result<serde_json::Value, String> {
    super::run_peer("langchain", "split.py", |cmd| {
        cmd.args(["--corpus", &corpus.to_string_lossy()])
            .args(["--max-tokens", &a.max_tokens.to_string()])
            .args(["--overlap", &a.overlap.to_string()])
            .args(["--rounds", &a.rounds.to_string()]);
    })
}

pub fn run(a: &ChunkingBenchArgs) -> Result<ChunkingReport, String> {
    let limits = ExtractLimits::default();
    let sources = if a.source.is_empty() {
        default_sources()
    } else {
        a.source.clone()
    };
    let want = (a.mb * 1e6) as usize;
    let docs = gather(&sources, want, &limits);
    let text_bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    if text_bytes < want {
        return Err(format!(
            "found only {text_bytes} bytes of text under {sources:?}, {want} wanted (--source, --mb)"
        ));
    }
    let source_bytes: usize = docs.iter().map(|d| d.raw.len()).sum();
    let mut by_type: std::collections::BTreeMap<String, usize> = Default::default();
    for d in &docs {
        *by_type.entry(d.kind.as_str().to_string()).or_default() += 1;
    }
    let corpus = match &a.corpus_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cw-chunking-corpus-{}", std::process::id())),
    };
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    for (i, d) in docs.iter().enumerate() {
        std::fs::write(corpus.join(format!("{i:06}.txt")), &d.text)
            .map_err(|e| format!("{}: {e}", corpus.display()))?;
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let t = Tokenizer::cl100k();
    let params = |d: &Doc| SplitParams {
        max_tokens: a.max_tokens,
        overlap_tokens: a.overlap,
        markdown: d.kind == DocType::Markdown,
        max_chunks: usize::MAX,
    };
    let split_doc = |d: &Doc| {
        let p = params(d);
        split::split(&d.text, &t, p).map(|c| c.len()).unwrap_or(0)
    };
    let extract = timed(a.rounds, threads, source_bytes, || {
        parallel(&docs, threads, |d| {
            // no chunks here: the figure is source MB/s
            let _ = extract::extract(&d.raw, d.kind, &limits);
            0
        })
    });
    let split_one_thread = timed(a.rounds, 1, text_bytes, || parallel(&docs, 1, split_doc));
    let split_all_threads = timed(a.rounds, threads, text_bytes, || {
        parallel(&docs, threads, split_doc)
    });
    let mut invariants = Invariants::default();
    for d in &docs {
        let p = params(d);
        let chunks = split::split(&d.text, &t, p).map_err(|e| e.to_string())?;
        check(&d.text, &chunks, &t, &p, &mut invariants);
    }
    let (peer, peer_error) = if a.no_peer {
        (None, None)
    } else {
        match peer(a, &corpus) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        }
    };
    let peer_mbs = peer.as_ref().and_then(|p| p.get("mb_per_s")?.as_f64());
    Ok(ChunkingReport {
        files: docs.len(),
        source_bytes,
        text_bytes,
        by_type: by_type.into_iter().collect(),
        corpus_dir: corpus.display().to_string(),
        max_tokens: a.max_tokens,
        overlap: a.overlap,
        ratio_one_thread: peer_mbs.map(|p| split_one_thread.mb_per_s / p),
        ratio_all_threads: peer_mbs.map(|p| split_all_threads.mb_per_s / p),
        extract,
        split_one_thread,
        split_all_threads,
        invariants,
        peer,
        peer_error,
    })
}
