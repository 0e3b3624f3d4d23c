//! The `chatter-worker` command line: every subcommand, flag and environment variable (what
//! `--help` prints). `main.rs` parses it and runs the chosen command.
use crate::jobs::Priority;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "chatter-worker",
    version,
    about = "Durable Redis job runtime for the Chatter AI platform"
)]
pub struct Cli {
    /// Redis to use.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Key prefix of every Redis key (isolates deployments sharing one Redis).
    #[arg(long, env = "CW_PREFIX", global = true)]
    pub prefix: Option<String>,
    /// Optional TOML configuration file (per-queue settings, retry policies, retention).
    #[arg(long, env = "CW_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// PostgreSQL with the documents (chunking and embedding need it).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Documents' files must lie under this folder (relative file paths are taken from it).
    #[arg(long, env = "CW_STORAGE_ROOT", global = true)]
    pub storage_root: Option<PathBuf>,
    /// A local embedding model's folder (selects the local provider unless the file says otherwise).
    #[arg(long, env = "CW_MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    /// The ONNX Runtime library (`libonnxruntime.so`) for a model folder with `model.onnx`.
    #[arg(long, env = "CW_ONNXRUNTIME", global = true)]
    pub onnxruntime: Option<PathBuf>,
    /// Cron schedules file (default: jobs/schedules.toml when it exists).
    #[arg(long, env = "CW_SCHEDULES", global = true)]
    pub schedules: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run worker pools, the rescuer, retention and /metrics, /healthz, /readyz until SIGTERM.
    Run(RunArgs),
    /// Enqueue one job and print its id.
    Enqueue(EnqueueArgs),
    /// Show, cancel or retry one job.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Depth per state of every queue; pause or resume one.
    Queues {
        #[command(subcommand)]
        action: Option<QueuesAction>,
    },
    /// Dead letters of a queue: list, replay, purge.
    Dead {
        #[command(subcommand)]
        action: DeadAction,
    },
    /// Create the database tables that are absent (documents, document_chunks).
    Migrate,
    /// Register files (folders recursed) as documents and enqueue their chunking.
    Ingest(IngestArgs),
    /// Top-k chunks most similar to a query (cosine, through the model's HNSW index).
    Search(SearchArgs),
    /// Cron schedules: each with its next and last fire.
    Schedules,
    /// Make an API key: prints the key (give it to the client) and the `[[api.keys]]` entry
    /// holding only its SHA-256 (put it in the config file).
    ApiKey {
        /// The user id jobs enqueued with the key belong to.
        #[arg(long)]
        user: String,
        /// A name for the key (shown nowhere but the config file).
        #[arg(long, default_value = "key")]
        name: String,
        /// Admin rights: every job and event, cleanup, the dashboard.
        #[arg(long)]
        admin: bool,
    },
    /// Chatter workflow definitions: validate, run.
    Workflows {
        #[command(subcommand)]
        action: WorkflowsAction,
    },
    /// (Internal) extract one document from stdin to stdout: the worker's extractor process.
    #[command(hide = true)]
    ExtractDocument(ExtractDocumentArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// Queues to work, comma separated (default: every queue a job kind runs on).
    #[arg(long, env = "CW_QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Jobs run at once per queue (unless the file sets the queue's own).
    #[arg(long, env = "CW_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "CW_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Lease of a claimed job, renewed every third of it; a dead worker's jobs return after it.
    #[arg(long, env = "CW_LEASE", value_parser = humantime::parse_duration)]
    pub lease: Option<Duration>,
    /// On SIGTERM, running jobs get this long to finish before they are handed back.
    #[arg(long, env = "CW_SHUTDOWN_DEADLINE", value_parser = humantime::parse_duration)]
    pub shutdown_deadline: Option<Duration>,
    /// How long completed jobs keep their record.
    #[arg(long, env = "CW_RETENTION", value_parser = humantime::parse_duration)]
    pub retention: Option<Duration>,
    /// Create absent database tables before starting.
    #[arg(long)]
    pub migrate: bool,
    /// Do not run the cron scheduler in this process.
    #[arg(long, env = "CW_NO_SCHEDULER")]
    pub no_scheduler: bool,
}

#[derive(Args)]
pub struct ExtractDocumentArgs {
    #[arg(long = "type")]
    pub doc_type: String,
    #[arg(long)]
    pub max_text_bytes: usize,
    #[arg(long)]
    pub max_unzipped_bytes: u64,
    #[arg(long)]
    pub max_zip_ratio: u64,
    #[arg(long)]
    pub max_zip_entries: usize,
}

#[derive(Args)]
pub struct IngestArgs {
    /// Files and folders (recursed) under the storage root.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The documents' owner (a Chatter user id).
    #[arg(long, default_value = "local")]
    pub owner: String,
    /// Follow the documents to their final status, up to this long (e.g. 10m); exit 2 if any failed.
    #[arg(long, num_args = 0..=1, default_missing_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

#[derive(Args)]
pub struct SearchArgs {
    pub query: String,
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,
    /// Only this owner's documents.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only these documents (repeat the flag).
    #[arg(long = "document")]
    pub documents: Vec<String>,
}

#[derive(Args)]
pub struct EnqueueArgs {
    /// Job kind (`function_name`), e.g. ping or sleep.
    pub kind: String,
    /// Arguments as JSON: an object becomes kwargs, an array args.
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// critical, high, normal or low.
    #[arg(long, default_value = "normal")]
    pub priority: Priority,
    /// Start no earlier than this from now (e.g. 500ms, 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub delay: Option<Duration>,
    /// A second enqueue with the same key returns the first job's id.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Retries after the first attempt (0-10).
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Execution time limit in seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Display name (default: the kind).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Subcommand)]
pub enum JobsAction {
    Show {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// Replay a dead-lettered job.
    Retry {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum QueuesAction {
    Pause {
        queue: String,
    },
    Resume {
        queue: String,
    },
    /// One consistency pass (what `run` does every `sweep_interval_secs`): every job record
    /// checked against its structure, stranded jobs put back, malformed records dead-lettered.
    Sweep {
        /// One queue (default: every known queue).
        queue: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DeadAction {
    List {
        queue: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Replay one dead job by id, or the oldest --limit with --all.
    Replay(DeadSelection),
    /// Delete one dead job by id, or the oldest --limit with --all.
    Purge(DeadSelection),
}

/// Which dead letters of a queue a command acts on.
#[derive(Args)]
pub struct DeadSelection {
    pub queue: String,
    pub id: Option<String>,
    #[arg(long)]
    pub all: bool,
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
}

impl DeadSelection {
    /// `(Some(id), 1)` for one job, `(None, limit)` with --all; an error for neither or both.
    pub fn target(&self) -> Result<(Option<&str>, usize), String> {
        match (&self.id, self.all) {
            (Some(id), false) => Ok((Some(id), 1)),
            (None, true) => Ok((None, self.limit)),
            _ => Err("give a job id or --all (not both)".into()),
        }
    }
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// No-op jobs: enqueue/s, drain jobs/s, end-to-end jobs/s, enqueue->start p50/p99, with apalis-redis.
    Queue {
        #[arg(long, default_value_t = 100_000)]
        jobs: usize,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        latency_samples: usize,
        /// Skip the apalis-redis comparison.
        #[arg(long)]
        no_peer: bool,
    },
    /// Extract + split real text (/usr/share/doc, the Rust docs): MB/s and chunks/s, with
    /// langchain-text-splitters' RecursiveCharacterTextSplitter on the same text.
    Chunking(ChunkingBenchArgs),
    /// The local model's chunks/s with sentence-transformers on the same chunks, then end-to-end
    /// ingestion into pgvector by a worker process (documents/s, chunks/s, peak RSS).
    Embedding(EmbeddingBenchArgs),
    /// A 10-node workflow against a local chat server answering at once: engine overhead per
    /// node (in memory, and checkpointed in PostgreSQL) and runs/s end to end through Redis and
    /// a worker pool, with LangGraph on the same graph and server.
    Workflows(WorkflowsBenchArgs),
    /// `POST /api/v1/jobs` under wrk (64 connections, loopback): requests/s and p99, with the
    /// Redis-direct enqueue rate of the same number of producers.
    Api(crate::bench::api::ApiBenchArgs),
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

#[derive(Subcommand)]
pub enum WorkflowsAction {
    /// Check definitions (JSON files): every problem, named by node or edge id and field.
    /// Exits 1 when any file is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Enqueue a run of a definition (JSON file) on queue `workflows`; prints the job id, which
    /// is also the execution id. An invalid definition is refused with every problem.
    Run(WorkflowRunArgs),
}

#[derive(Args, Debug)]
pub struct WorkflowRunArgs {
    pub file: PathBuf,
    /// The run's inputs, a JSON object (`{"message": "..."}`).
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// The Chatter user the run acts for (its documents, memory and events).
    #[arg(long, default_value = "cli")]
    pub owner: String,
    /// critical, high, normal or low.
    #[arg(long, default_value = "normal")]
    pub priority: Priority,
    /// Wait for the run to end and print its output (exit 1 unless it completed).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub wait_timeout: Duration,
}
