//! Configuration: an optional TOML file, then environment variables and flags (see `--help`).
//!
//! Everything has a production default, so `chatter-worker run` needs only `REDIS_URL`. The file
//! adds per-queue settings (`[queue.NAME]`) and per-kind retry policies (`[retry.KIND]`). Unknown
//! keys are errors that name the key, so a typo never silently falls back to a default.
use crate::pool::PoolConfig;
use crate::queue::QueueOptions;
use crate::retry::RetryPolicy;
use chatter_jobs::Registry;
use chatter_jobs::chunk::{self, extract::ExtractLimits, source::SourceConfig};
use chatter_jobs::registry::queues;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod limits;
pub use limits::{KindLimits, LimitsSettings};
// ---- end payload limits ----

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub concurrency: Option<usize>,
    pub timeout_secs: Option<f64>,
    pub lease_secs: Option<f64>,
    pub fetch_batch: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub redis_url: String,
    pub prefix: String,
    pub http_addr: String,
    /// Queues this process works; empty = every queue some registered kind runs on.
    pub queues: Vec<String>,
    /// Default concurrency of a queue without its own setting.
    pub concurrency: usize,
    pub lease_secs: f64,
    pub timeout_secs: f64,
    pub fetch_batch: usize,
    pub shutdown_deadline_secs: f64,
    pub finished_retention_secs: f64,
    pub max_finished: u64,
    pub max_dead: u64,
    pub idempotency_ttl_secs: f64,
    pub rescue_interval_secs: f64,
    pub retention_interval_secs: f64,
    /// Time between consistency sweeps (every job record checked against its structure).
    pub sweep_interval_secs: f64,
    pub queue: BTreeMap<String, QueueSettings>,
    pub retry: HashMap<String, RetryPolicy>,
    /// PostgreSQL (documents, chunks); without it the kinds that need a database do not run.
    pub database_url: Option<String>,
    pub db_max_connections: u32,
    /// Run the migrations at start (`run --migrate`).
    pub migrate: bool,
    pub chunking: ChunkingSettings,
    pub embedding: EmbeddingSettings,
    pub workflows: WorkflowsSettings,
    /// Cron schedules file; default `jobs/schedules.toml` when it exists.
    pub schedules: Option<PathBuf>,
    /// Run the cron scheduler in `run` (every process may: each tick fires once).
    pub scheduler: bool,
    /// How often the scheduler looks for due ticks.
    pub scheduler_poll_secs: f64,
    /// Job and document events kept for SSE replay (`Last-Event-ID`); 0 = publish none.
    pub event_log_len: u64,
    /// `[api]`: the producers' HTTP API, the event stream and the dashboard.
    pub api: ApiSettings,
    /// `[http]`: the HTTP server's limits, readiness checks and dashboard sessions.
    pub http: HttpSettings,
    /// `[limits]`: job size limits (per field and whole, per kind) and the scheduling horizon,
    /// checked at every enqueue (`config/limits.rs`).
    pub limits: LimitsSettings,
}

/// `[http]`: limits of the HTTP server (every listener: `/metrics`, health, API, dashboard),
/// its readiness checks and the dashboard's sessions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Time a client has to send a request's line and headers; slower ones are disconnected.
    pub header_timeout_secs: f64,
    /// Time a client has to send a request's whole body (API and dashboard posts); slower
    /// ones get 408.
    pub body_timeout_secs: f64,
    /// Connections served at once per listener; the next ones wait until one closes.
    pub max_connections: usize,
    /// Longest `/readyz` waits for Redis and PostgreSQL to answer before calling them down.
    pub ready_timeout_secs: f64,
    /// Lifetime of a dashboard login (its session in Redis and its cookie).
    pub session_ttl_secs: f64,
    /// Always mark the session cookie `Secure` (the dashboard is only reached over HTTPS).
    pub secure_cookie: bool,
    /// Mark the session cookie `Secure` when the request says `X-Forwarded-Proto: https`. Only
    /// for a server reached through a TLS-terminating proxy that sets that header itself.
    pub trust_forwarded_proto: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10.0,
            body_timeout_secs: 30.0,
            max_connections: 1024,
            ready_timeout_secs: 2.0,
            session_ttl_secs: 8.0 * 3600.0,
            secure_cookie: false,
            trust_forwarded_proto: false,
        }
    }
}

/// Shortest `jwt_secret` accepted: HS256 keys of fewer bytes can be brute-forced offline from
/// one token.
pub const MIN_JWT_SECRET: usize = 32;

impl ApiSettings {
    /// Largest request body, bytes.
    pub fn max_body(&self) -> usize {
        (self.max_body_mb * 1024.0 * 1024.0) as usize
    }

    /// The JWT secret in use: `[api] jwt_secret`, else `CW_JWT_SECRET`; empty means none.
    pub fn jwt_secret(&self) -> Option<String> {
        self.jwt_secret
            .clone()
            .or_else(|| std::env::var("CW_JWT_SECRET").ok())
            .filter(|s| !s.is_empty())
    }
}

impl HttpSettings {
    fn validate(&self, api: &ApiSettings) -> Result<(), ConfigError> {
        for (field, v) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("ready_timeout_secs", self.ready_timeout_secs),
            ("session_ttl_secs", self.session_ttl_secs),
        ] {
            positive(&format!("[http] {field}"), v, 0.01)?;
            secs(&format!("[http] {field}"), v)?;
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "[http] max_connections must be at least 1".into(),
            ));
        }
        if let Some(secret) = api.jwt_secret().filter(|s| s.len() < MIN_JWT_SECRET) {
            return Err(ConfigError::Invalid(format!(
                "[api] jwt_secret (or CW_JWT_SECRET) is {} bytes: it must be at least {MIN_JWT_SECRET} \
                 (e.g. `openssl rand -hex 32`)",
                secret.len()
            )));
        }
        Ok(())
    }

    pub fn limits(&self) -> crate::http::server::Limits {
        crate::http::server::Limits {
            header_timeout: Duration::from_secs_f64(self.header_timeout_secs),
            max_connections: self.max_connections,
        }
    }
}

/// `[api]`: `/api/v1` and `/dashboard`, served on `http_addr` beside `/metrics`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    pub enabled: bool,
    /// Serve the API and dashboard on their own address instead of `http_addr` (also
    /// `CW_API_ADDR`).
    pub addr: Option<String>,
    /// HS256 secret shared with Chatter for its JWTs (`sub` = user id); also `CW_JWT_SECRET`.
    /// At least 32 bytes (`MIN_JWT_SECRET`): a shorter one stops the start.
    pub jwt_secret: Option<String>,
    /// User ids with admin rights (all jobs, all events, cleanup, the dashboard).
    pub admins: Vec<String>,
    /// Bearer API keys, stored as the SHA-256 of the key (`chatter-worker api-key new`).
    pub keys: Vec<ApiKeySettings>,
    /// The kinds users may enqueue through the API (admins: every kind). A user's
    /// `chunk_document` must name a document they own.
    pub user_kinds: Vec<String>,
    /// The most jobs one `POST /api/v1/jobs/batch` takes.
    pub max_batch: usize,
    /// Largest request body of the batch route, MB; at least `[limits] max_job_mb` (checked at
    /// start). The single-job routes read at most the largest job allowed plus 64 KiB.
    pub max_body_mb: f64,
    /// Seconds between SSE keep-alive comments.
    pub keepalive_secs: f64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: None,
            jwt_secret: None,
            admins: Vec::new(),
            keys: Vec::new(),
            user_kinds: vec!["chunk_document".into(), "run_workflow".into()],
            max_batch: 10_000,
            max_body_mb: 64.0,
            keepalive_secs: 15.0,
        }
    }
}

/// `[[api.keys]]`: one API key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// The user id jobs enqueued with this key belong to.
    pub user: String,
    #[serde(default)]
    pub admin: bool,
}

/// `[workflows]`: the `run_workflow` handler: chat providers, tools, limits, prices.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowsSettings {
    /// The default chat provider (OpenAI-compatible, e.g. `https://api.openai.com/v1`; also
    /// `CW_LLM_BASE_URL`). It is named `default`; nodes naming no provider use it.
    pub base_url: Option<String>,
    /// Its key (also `CW_LLM_API_KEY` or `OPENAI_API_KEY`).
    pub api_key: Option<String>,
    pub request_timeout_secs: f64,
    /// More providers by name (`[workflows.providers.NAME]`), for nodes whose `provider` names one.
    pub providers: BTreeMap<String, ChatProviderSettings>,
    /// The provider of nodes naming none or an unknown one (default: `default` when
    /// `base_url` is set, else the only provider).
    pub default_provider: Option<String>,
    /// Running time of one execution, across retries (Chatter: 300 s).
    pub execution_timeout_secs: f64,
    /// Longest one node may take (Chatter: 60 s).
    pub step_timeout_secs: f64,
    /// Most tokens (prompt + completion) one execution may use (Chatter: 100k).
    pub token_budget: u64,
    /// Delays up to this long are waited in the worker; longer ones snooze the job.
    pub inline_delay_secs: f64,
    /// Most nodes one execution may run (Chatter's recursion limit: 100).
    pub max_steps: u32,
    /// Price per million tokens by model name (`[workflows.prices."gpt-4o-mini"]`); a model
    /// without a price costs 0.
    pub prices: BTreeMap<String, chatter_jobs::flow::Price>,
    /// HTTP tools (`[[workflows.tools]]`: name, description, url, method, parameters, timeout_ms,
    /// headers).
    pub tools: Vec<chatter_jobs::flow::tools::ToolSpec>,
    /// Networks (CIDR) tool and retrieval URLs may reach although they are loopback / private /
    /// link-local.
    pub allow_networks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChatProviderSettings {
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub request_timeout_secs: Option<f64>,
}

impl Default for WorkflowsSettings {
    fn default() -> Self {
        let d = chatter_jobs::flow::WorkflowSettings::default();
        Self {
            base_url: None,
            api_key: None,
            request_timeout_secs: d.step_timeout.as_secs_f64(),
            providers: BTreeMap::new(),
            default_provider: None,
            execution_timeout_secs: d.execution_timeout.as_secs_f64(),
            step_timeout_secs: d.step_timeout.as_secs_f64(),
            token_budget: d.token_budget,
            inline_delay_secs: d.inline_delay.as_secs_f64(),
            max_steps: d.max_steps,
            prices: BTreeMap::new(),
            tools: Vec::new(),
            allow_networks: Vec::new(),
        }
    }
}

/// `[chunking]`: the `chunk_document` handler. Defaults are the handler's own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkingSettings {
    /// Documents' files must lie under this folder; relative `file_path`s are taken from it.
    /// Without one, only URL documents can be read.
    pub storage_root: Option<PathBuf>,
    /// Largest document, in MB (10^6 bytes); Chatter's upload limit is 50.
    pub max_file_mb: f64,
    /// Most chunks one document may have.
    pub max_chunks: usize,
    /// Time extraction of one document may take (its extractor process is killed then).
    pub extract_timeout_secs: f64,
    /// Address space of the extractor process, in MB: a decompression bomb ends there.
    pub extractor_memory_mb: u64,
    /// Most text one document may extract to, in MB.
    pub max_text_mb: f64,
    /// Time limit of one URL fetch, redirects included.
    pub fetch_timeout_secs: f64,
    pub max_redirects: usize,
    /// Networks (CIDR) the URL guard lets through although they are loopback / private / link-local.
    pub allow_networks: Vec<String>,
    /// Enqueue `embed_chunks` batches after chunking; when false a chunked document is
    /// `processed`. Default: when `[embedding]` has a provider.
    pub embed: Option<bool>,
    /// Chunk ids per `embed_chunks` job.
    pub embed_batch: usize,
    /// What a DOCX may unpack to, in MB, and the largest unpacked/packed ratio of an entry.
    pub max_unzipped_mb: f64,
    pub max_zip_ratio: u64,
}

impl Default for ChunkingSettings {
    fn default() -> Self {
        // The handler's own defaults (without building its tokenizer: every command loads these).
        let (source, limits) = (SourceConfig::default(), ExtractLimits::default());
        Self {
            storage_root: None,
            max_file_mb: source.max_file_bytes as f64 / 1e6,
            max_chunks: chunk::DEFAULT_MAX_CHUNKS,
            extract_timeout_secs: chunk::DEFAULT_EXTRACT_TIMEOUT.as_secs_f64(),
            extractor_memory_mb: 2048,
            max_text_mb: limits.max_text_bytes as f64 / 1e6,
            fetch_timeout_secs: source.fetch_timeout.as_secs_f64(),
            max_redirects: source.max_redirects,
            allow_networks: Vec::new(),
            embed: None,
            embed_batch: chunk::DEFAULT_EMBED_BATCH,
            max_unzipped_mb: limits.max_unzipped_bytes as f64 / 1e6,
            max_zip_ratio: limits.max_zip_ratio,
        }
    }
}

/// `[embedding]`: the embedding provider and model (chunks are sized in its tokenizer).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingSettings {
    /// `openai` (any OpenAI-compatible API), `local` (a model folder run in process) or `none`.
    /// Default: `local` when `model_dir` is set, `openai` when `api_key` or `base_url` is, else
    /// `none` (documents are `processed` once chunked).
    pub provider: Option<String>,
    /// The model's name. Default: `text-embedding-3-large` (openai), the folder's name (local).
    pub model: Option<String>,
    /// A local model's folder: `config.json`, `tokenizer.json` and either `model.onnx` (run by
    /// ONNX Runtime) or `model.safetensors` (run by candle).
    pub model_dir: Option<PathBuf>,
    /// The ONNX Runtime library for a `model.onnx` folder (also `CW_ONNXRUNTIME`; default
    /// `ORT_DYLIB_PATH`, else `libonnxruntime.so` in the model's folder, else on the loader's path).
    pub onnxruntime: Option<PathBuf>,
    /// Tokens one input may have; default 8191 for OpenAI models, the local model's own limit.
    pub max_input_tokens: Option<usize>,
    /// Vector size; default the model's own (OpenAI v3 models shorten to this on request).
    pub dimensions: Option<usize>,
    pub base_url: Option<String>,
    /// Also `CW_EMBEDDING_API_KEY` or `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    pub max_inputs_per_request: usize,
    pub max_tokens_per_request: usize,
    pub request_timeout_secs: f64,
    /// The provider account's limits, shared by every process through Redis.
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// The limits' window (60 s: "per minute"); tests shorten it.
    pub rate_window_secs: f64,
    /// Retries of one provider request in place, before the job itself is retried.
    pub max_retries: usize,
    /// The longest `Retry-After` waited in place; longer ones snooze the job.
    pub max_retry_after_secs: f64,
    /// Inputs per forward pass of a local model (default: the runtime's best, 1 for ONNX Runtime,
    /// 4 for candle).
    pub local_batch: Option<usize>,
    /// Forward passes of a local model at once (default 1; 0: one per core). Each holds a
    /// batch's activations (and an ONNX session); one already uses every core, two gain 7–17%
    /// for 55–130 MB more (docs/PERFORMANCE.md).
    pub local_lanes: Option<usize>,
    /// HNSW candidates per search (recall against speed).
    pub ef_search: usize,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        let e = chatter_jobs::embed::EmbedSettings::default();
        Self {
            provider: None,
            model: None,
            model_dir: None,
            onnxruntime: None,
            max_input_tokens: None,
            dimensions: None,
            base_url: None,
            api_key: None,
            max_inputs_per_request: 2048,
            max_tokens_per_request: 300_000,
            request_timeout_secs: 60.0,
            requests_per_minute: None,
            tokens_per_minute: None,
            rate_window_secs: 60.0,
            max_retries: e.max_retries,
            max_retry_after_secs: e.max_retry_after.as_secs_f64(),
            local_batch: None,
            local_lanes: None,
            ef_search: e.ef_search,
        }
    }
}

/// Which provider `[embedding]` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Local,
    None,
}

impl EmbeddingSettings {
    pub fn kind(&self) -> Result<ProviderKind, ConfigError> {
        match self.provider.as_deref() {
            Some("openai") => Ok(ProviderKind::OpenAi),
            Some("local") => Ok(ProviderKind::Local),
            Some("none") => Ok(ProviderKind::None),
            Some(other) => Err(ConfigError::Invalid(format!(
                "[embedding] provider = {other:?}: expected openai, local or none"
            ))),
            None if self.model_dir.is_some() => Ok(ProviderKind::Local),
            None if self.api_key.is_some() || self.base_url.is_some() => Ok(ProviderKind::OpenAi),
            None => Ok(ProviderKind::None),
        }
    }

    /// The model's name in its vector space.
    pub fn model_name(&self) -> String {
        match (&self.model, self.kind()) {
            (Some(m), _) => m.clone(),
            (None, Ok(ProviderKind::Local)) => self
                .model_dir
                .as_ref()
                .and_then(|d| d.canonicalize().ok().or_else(|| Some(d.clone())))
                .and_then(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "all-MiniLM-L6-v2".into()),
            (None, _) => "text-embedding-3-large".into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let pool = PoolConfig::default();
        let q = QueueOptions::default();
        Self {
            redis_url: "redis://127.0.0.1:6379/".into(),
            prefix: "cw".into(),
            http_addr: "127.0.0.1:9464".into(),
            queues: Vec::new(),
            concurrency: pool.concurrency,
            lease_secs: pool.lease.as_secs_f64(),
            timeout_secs: pool.timeout.as_secs_f64(),
            fetch_batch: pool.fetch_batch,
            shutdown_deadline_secs: pool.shutdown_deadline.as_secs_f64(),
            finished_retention_secs: q.finished_retention.as_secs_f64(),
            max_finished: q.max_finished,
            max_dead: q.max_dead,
            idempotency_ttl_secs: q.idempotency_ttl.as_secs_f64(),
            rescue_interval_secs: 1.0,
            retention_interval_secs: 10.0,
            sweep_interval_secs: crate::sweep::DEFAULT_INTERVAL.as_secs_f64(),
            queue: BTreeMap::new(),
            retry: HashMap::new(),
            database_url: None,
            db_max_connections: 10,
            migrate: false,
            chunking: ChunkingSettings::default(),
            embedding: EmbeddingSettings::default(),
            workflows: WorkflowsSettings::default(),
            schedules: None,
            scheduler: true,
            scheduler_poll_secs: 0.25,
            event_log_len: q.event_log_len,
            api: ApiSettings::default(),
            http: HttpSettings::default(),
            limits: LimitsSettings::default(),
        }
    }
}

fn secs(field: &str, v: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(v).map_err(|_| {
        ConfigError::Invalid(format!("`{field}` = {v} is not a valid number of seconds"))
    })
}

/// A finite number of at least `min` (seconds or a factor), or an error naming the field.
fn positive(field: &str, v: f64, min: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= min {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "`{field}` = {v} must be a finite number of at least {min}"
        )))
    }
}

/// CIDR networks or single addresses, or an error naming the bad entry.
pub fn networks(field: &str, list: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "{field}: {n:?} is not an address or CIDR network"
                    ))
                })
        })
        .collect()
}

impl Settings {
    /// Defaults, overlaid with the TOML file when one is given.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown,
            message: e.to_string(),
        })
    }

    /// Check what serde cannot: positive sizes, valid durations, known queues and kinds.
    pub fn validate(&self, registry: &Registry) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "`concurrency` must be at least 1".into(),
            ));
        }
        for (name, q) in &self.queue {
            if q.concurrency == Some(0) {
                return Err(ConfigError::Invalid(format!(
                    "[queue.{name}] concurrency must be at least 1"
                )));
            }
            for (field, v) in [
                ("lease_secs", q.lease_secs),
                ("timeout_secs", q.timeout_secs),
            ] {
                if let Some(v) = v {
                    positive(&format!("[queue.{name}] {field}"), v, 0.03)?;
                }
            }
        }
        for (kind, p) in &self.retry {
            for (field, v) in [
                ("base_secs", p.base_secs),
                ("factor", p.factor),
                ("cap_secs", p.cap_secs),
            ] {
                positive(&format!("[retry.{kind}] {field}"), v, 0.0)?;
            }
            if !(0.0..=10.0).contains(&p.jitter) {
                return Err(ConfigError::Invalid(format!(
                    "[retry.{kind}] jitter = {} must be within 0..=10",
                    p.jitter
                )));
            }
        }
        for kind in self.retry.keys() {
            registry
                .resolve(kind)
                .map_err(|e| ConfigError::Invalid(format!("[retry.{kind}]: {e}")))?;
        }
        for (field, v) in [
            ("lease_secs", self.lease_secs),
            ("timeout_secs", self.timeout_secs),
            ("shutdown_deadline_secs", self.shutdown_deadline_secs),
            ("finished_retention_secs", self.finished_retention_secs),
            ("idempotency_ttl_secs", self.idempotency_ttl_secs),
            ("rescue_interval_secs", self.rescue_interval_secs),
            ("retention_interval_secs", self.retention_interval_secs),
            ("sweep_interval_secs", self.sweep_interval_secs),
        ] {
            secs(field, v)?;
        }
        positive("timeout_secs", self.timeout_secs, 0.001)?;
        // A sweep reads every job key: more often than every 10 s would be a load, not a check.
        if self.sweep_interval_secs != 0.0 {
            positive(
                "sweep_interval_secs (0 = off)",
                self.sweep_interval_secs,
                10.0,
            )?;
        }
        self.http.validate(&self.api)?;
        let a = &self.api;
        positive("[api] max_body_mb", a.max_body_mb, 0.001)?;
        self.limits.validate(registry, a.max_body_mb)?;
        positive("[api] keepalive_secs", a.keepalive_secs, 0.1)?;
        secs("[api] keepalive_secs", a.keepalive_secs)?;
        for kind in &a.user_kinds {
            registry
                .resolve(kind)
                .map_err(|e| ConfigError::Invalid(format!("[api] user_kinds: {e}")))?;
        }
        if a.max_batch == 0 {
            return Err(ConfigError::Invalid(
                "[api] max_batch must be at least 1".into(),
            ));
        }
        for k in &a.keys {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid(format!(
                    "[[api.keys]] {:?}: sha256 must be 64 hex digits (chatter-worker api-key new)",
                    k.name
                )));
            }
            if k.user.is_empty() || k.user.len() > 64 {
                return Err(ConfigError::Invalid(format!(
                    "[[api.keys]] {:?}: user must be 1..=64 bytes",
                    k.name
                )));
            }
        }
        let c = &self.chunking;
        positive("[chunking] max_file_mb", c.max_file_mb, 0.000001)?;
        positive("[chunking] max_unzipped_mb", c.max_unzipped_mb, 0.000001)?;
        positive("[chunking] max_text_mb", c.max_text_mb, 0.000001)?;
        positive(
            "[chunking] extractor_memory_mb",
            c.extractor_memory_mb as f64,
            64.0,
        )?;
        positive(
            "[chunking] extract_timeout_secs",
            c.extract_timeout_secs,
            0.001,
        )?;
        positive("[chunking] fetch_timeout_secs", c.fetch_timeout_secs, 0.001)?;
        secs("[chunking] extract_timeout_secs", c.extract_timeout_secs)?;
        secs("[chunking] fetch_timeout_secs", c.fetch_timeout_secs)?;
        for (field, v) in [
            ("max_chunks", c.max_chunks),
            ("embed_batch", c.embed_batch),
            ("max_zip_ratio", c.max_zip_ratio as usize),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[chunking] {field} must be at least 1"
                )));
            }
        }
        self.allow_networks()?;
        let e = &self.embedding;
        let kind = e.kind()?;
        if kind == ProviderKind::Local && e.model_dir.is_none() {
            return Err(ConfigError::Invalid(
                "[embedding] provider = \"local\" needs model_dir (or CW_MODEL_DIR)".into(),
            ));
        }
        for (field, v) in [
            ("request_timeout_secs", e.request_timeout_secs),
            ("rate_window_secs", e.rate_window_secs),
            ("max_retry_after_secs", e.max_retry_after_secs),
        ] {
            positive(&format!("[embedding] {field}"), v, 0.001)?;
            secs(&format!("[embedding] {field}"), v)?;
        }
        for (field, v) in [
            ("max_inputs_per_request", e.max_inputs_per_request as u64),
            ("max_tokens_per_request", e.max_tokens_per_request as u64),
            ("local_batch", e.local_batch.unwrap_or(1) as u64),
            ("ef_search", e.ef_search as u64),
            ("dimensions", e.dimensions.unwrap_or(1) as u64),
            ("requests_per_minute", e.requests_per_minute.unwrap_or(1)),
            ("tokens_per_minute", e.tokens_per_minute.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[embedding] {field} must be at least 1"
                )));
            }
        }
        let w = &self.workflows;
        for (field, v) in [
            ("request_timeout_secs", w.request_timeout_secs),
            ("execution_timeout_secs", w.execution_timeout_secs),
            ("step_timeout_secs", w.step_timeout_secs),
        ] {
            positive(&format!("[workflows] {field}"), v, 0.001)?;
            secs(&format!("[workflows] {field}"), v)?;
        }
        secs("[workflows] inline_delay_secs", w.inline_delay_secs)?;
        for (field, v) in [
            ("token_budget", w.token_budget),
            ("max_steps", w.max_steps as u64),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "[workflows] {field} must be at least 1"
                )));
            }
        }
        for (model, p) in &w.prices {
            if !(p.prompt_per_million >= 0.0 && p.completion_per_million >= 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "[workflows.prices.{model:?}] prices must be 0 or more"
                )));
            }
        }
        networks("[workflows] allow_networks", &w.allow_networks)?;
        positive("scheduler_poll_secs", self.scheduler_poll_secs, 0.01)?;
        secs("scheduler_poll_secs", self.scheduler_poll_secs)?;
        positive("idempotency_ttl_secs", self.idempotency_ttl_secs, 0.001)?;
        if self.lease_secs < 0.03 {
            return Err(ConfigError::Invalid(format!(
                "`lease_secs` = {} is too short (at least 0.03)",
                self.lease_secs
            )));
        }
        Ok(())
    }

    /// The networks `[chunking] allow_networks` names, or an error naming the bad entry.
    pub fn allow_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        networks("[chunking] allow_networks", &self.chunking.allow_networks)
    }

    /// The queues this process serves (metrics, rescue, retention; pools where it has handlers).
    pub fn queue_names(&self, registry: &Registry) -> Vec<String> {
        if self.queues.is_empty() {
            registry.queues().into_iter().collect()
        } else {
            self.queues.clone()
        }
    }

    /// The schedules file in use: the configured one, else `jobs/schedules.toml` if present.
    pub fn schedules_path(&self) -> Option<PathBuf> {
        self.schedules.clone().or_else(|| {
            let p = PathBuf::from("jobs/schedules.toml");
            p.exists().then_some(p)
        })
    }

    pub fn queue_options(&self) -> QueueOptions {
        QueueOptions {
            idempotency_ttl: Duration::from_secs_f64(self.idempotency_ttl_secs),
            finished_retention: Duration::from_secs_f64(self.finished_retention_secs),
            max_finished: self.max_finished,
            max_dead: self.max_dead,
            event_log_len: self.event_log_len,
            limits: self.limits.job_limits(),
        }
    }

    /// A queue's concurrency when `[queue.<name>]` sets none: `concurrency`, except where jobs
    /// use the CPU: chunking runs about one document per core, and embedding with the local
    /// model two batches (one in the model, one being read or written). More would only wait,
    /// each holding its documents or vectors: with 16 of each, the worker's peak RSS in the
    /// embedding benchmark was 400 MB against 263 MB at the same speed (docs/PERFORMANCE.md).
    pub fn default_concurrency(&self, queue: &str) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match queue {
            queues::CHUNKING => self.concurrency.min(cores.max(2)),
            queues::EMBEDDING if matches!(self.embedding.kind(), Ok(ProviderKind::Local)) => {
                self.concurrency.min(2)
            }
            _ => self.concurrency,
        }
    }

    pub fn pool_config(&self, queue: &str) -> PoolConfig {
        let q = self.queue.get(queue).cloned().unwrap_or_default();
        PoolConfig {
            concurrency: q
                .concurrency
                .unwrap_or_else(|| self.default_concurrency(queue)),
            timeout: Duration::from_secs_f64(q.timeout_secs.unwrap_or(self.timeout_secs)),
            lease: Duration::from_secs_f64(q.lease_secs.unwrap_or(self.lease_secs)),
            fetch_batch: q.fetch_batch.unwrap_or(self.fetch_batch),
            shutdown_deadline: Duration::from_secs_f64(self.shutdown_deadline_secs),
            retry: self.retry.clone(),
            ..PoolConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_overlay_defaults_and_typos_are_named() {
        let dir = std::env::temp_dir().join(format!("cw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "prefix = \"x\"\n[queue.maintenance]\nconcurrency = 3\n[retry.sleep]\nbase_secs = 1\n",
        )
        .unwrap();
        let s = Settings::load(Some(&good)).unwrap();
        assert_eq!(s.prefix, "x");
        assert_eq!(s.pool_config("maintenance").concurrency, 3);
        assert_eq!(s.pool_config("workflows").concurrency, 16);
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(s.pool_config("chunking").concurrency, cores.clamp(2, 16));
        s.validate(&Registry::builtin()).unwrap();

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[queue.maintenance]\nconcurency = 3\n").unwrap();
        let err = Settings::load(Some(&bad)).unwrap_err().to_string();
        assert!(
            err.contains("concurency") && err.contains("bad.toml"),
            "{err}"
        );

        let unknown = Settings {
            retry: HashMap::from([("nope".into(), RetryPolicy::default())]),
            ..Settings::default()
        };
        let err = unknown
            .validate(&Registry::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[retry.nope]") && err.contains("ping"),
            "{err}"
        );
    }
}
