//! The flags of the benchmarks that take their own (`bench queue`, `workflows`, `embedding`,
//! `chunking`):
//! parsed by the command line (`crate::cli::bench` re-exports them), read by the benchmarks, so
//! the benchmarks do not depend on the command line.
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Which of our backends `bench queue` measures.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBenchBackend {
    /// The Redis backend (with the apalis-redis comparison unless `--no-peer`).
    #[default]
    Redis,
    /// The embedded backend on a SQLite file (no peer: apalis-redis compares with Redis only).
    Sqlite,
    /// Redis, then SQLite, in the same run: both figures side by side with their ratio.
    Both,
}

impl QueueBenchBackend {
    pub fn redis(self) -> bool {
        matches!(self, Self::Redis | Self::Both)
    }
    pub fn sqlite(self) -> bool {
        matches!(self, Self::Sqlite | Self::Both)
    }
}

#[derive(Args, Clone, Debug)]
pub struct QueueBenchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 2000)]
    pub latency_samples: usize,
    /// Skip the apalis-redis comparison.
    #[arg(long)]
    pub no_peer: bool,
    /// Our backend measured: redis, sqlite (the embedded mode) or both (side by side).
    #[arg(long, value_enum, default_value_t = QueueBenchBackend::Redis)]
    pub backend: QueueBenchBackend,
    /// The SQLite file of `--backend sqlite|both` (default: a fresh file in the temp folder,
    /// removed after; a file given here is kept, its bench queue named per run).
    #[arg(long)]
    pub sqlite_path: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct WorkflowsBenchArgs {
    /// Workflow runs per end-to-end round (and per LangGraph round).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Runs at once (the worker pool's concurrency; LangGraph's semaphore).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Sequential runs per round of the in-memory engine measurement.
    #[arg(long, default_value_t = 2000)]
    pub engine_runs: usize,
    /// Timed rounds (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Skip LangGraph.
    #[arg(long)]
    pub no_peer: bool,
}

#[derive(Args, Clone, Debug)]
pub struct EmbeddingBenchArgs {
    /// Chunks embedded per round.
    #[arg(long, default_value_t = 512)]
    pub chunks: usize,
    /// Chunk size in the model's tokens (its limit is 254 without [CLS] and [SEP]).
    #[arg(long, default_value_t = 254)]
    pub max_tokens: usize,
    /// Our inputs per forward pass, here and in the end-to-end worker (default: each
    /// runtime's own, as `[embedding] local_batch`).
    #[arg(long)]
    pub batch: Option<usize>,
    /// sentence-transformers' batch_size.
    #[arg(long, default_value_t = 16)]
    pub peer_batch: usize,
    /// Our forward passes at once (0: one per core; default as `[embedding] local_lanes`).
    #[arg(long)]
    pub lanes: Option<usize>,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// MB of documents' text ingested end to end (needs DATABASE_URL; 0 skips it).
    #[arg(long, default_value_t = 1.0)]
    pub ingest_mb: f64,
    /// Where chunks and documents are written (default: a temporary folder).
    #[arg(long)]
    pub corpus_dir: Option<PathBuf>,
    /// Skip sentence-transformers.
    #[arg(long)]
    pub no_peer: bool,
    /// The int8 ONNX model folder measured next to the F32 one (default: where
    /// `scripts/fetch-model.sh int8` puts it; skipped when missing).
    #[arg(long)]
    pub int8_dir: Option<PathBuf>,
    /// The folder the end-to-end worker runs (default: the faster of the two).
    #[arg(long)]
    pub ingest_model_dir: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct ChunkingBenchArgs {
    /// Folders to take documents from (default: /usr/share/doc and the Rust toolchain's docs).
    #[arg(long)]
    pub source: Vec<PathBuf>,
    /// MB of extracted text to gather.
    #[arg(long, default_value_t = 50.0)]
    pub mb: f64,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 32)]
    pub overlap: usize,
    /// Timed rounds per system (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Threads splitting documents at once (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the gathered corpus is written as .txt files (default: a temporary folder).
    #[arg(long)]
    pub corpus_dir: Option<PathBuf>,
    /// Skip the langchain comparison.
    #[arg(long)]
    pub no_peer: bool,
}
