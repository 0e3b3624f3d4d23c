//! The `chatter-worker` command line: every subcommand, flag and environment variable (what
//! `--help` prints), and one module per command group running it (`jobs`, `queues`, `dead`,
//! `documents`, `workflows`, `schedules`, `api_key`, `bench`, `run`, `model`, `demo`), each from
//! the settings `context` builds. `main.rs` parses the line, sets up tracing and calls the
//! chosen command.
use crate::jobs::Priority;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub mod api_key;
pub mod bench;
pub mod context;
pub mod dead;
pub mod demo;
pub mod documents;
pub mod jobs;
pub mod model;
pub mod queues;
pub mod run;
pub mod schedules;
pub mod workflows;
pub use bench::{BenchWhat, ChunkingBenchArgs, EmbeddingBenchArgs, WorkflowsBenchArgs};

#[derive(Parser)]
#[command(
    name = "chatter-worker",
    version,
    about = "Durable Redis job runtime for the Chatter AI platform"
)]
pub struct Cli {
    /// Redis to use. With neither this nor --database-url, everything runs embedded in one
    /// SQLite file (--sqlite).
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// The embedded mode's SQLite file, queue and store (default ./chatter-worker.db when
    /// neither Redis nor PostgreSQL is configured).
    #[arg(long, env = "CW_SQLITE", global = true)]
    pub sqlite: Option<PathBuf>,
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
    /// The local embedding model (all-MiniLM-L6-v2), fetched once into the cache.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Try it in this folder with no services: fetch the model, run everything embedded in
    /// `./chatter-worker.db`, ingest the project's own docs, search them, run a retrieval
    /// workflow, then serve the API and dashboard until Ctrl-C.
    Demo(DemoArgs),
}

#[derive(Subcommand)]
pub enum ModelAction {
    /// Download the model into the cache unless it is there (or `--model-dir` names one);
    /// prints its folder. `CW_MODEL_HUB` is the base URL of its files, `CW_MODEL_CACHE` the
    /// cache folder (default `$XDG_CACHE_HOME/chatter-worker/models`, else
    /// `~/.cache/chatter-worker/models`).
    Fetch,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Loopback port of the API and dashboard; a free one when it is taken.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Print everything, then shut down cleanly instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit_after_ready: bool,
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
