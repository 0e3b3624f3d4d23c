//! Configuration: an optional TOML file, then environment variables and flags (see `--help`).
//!
//! Everything has a default. With neither `REDIS_URL` nor `DATABASE_URL` (nor `sqlite`), the
//! process runs embedded: queue and store in one SQLite file ([`Settings::embedded`]). The file
//! adds per-queue settings (`[queue.NAME]`) and per-kind retry policies (`[retry.KIND]`). Unknown
//! keys are errors that name the key, so a typo never silently falls back to a default. This file
//! holds [`Settings`] and its loading; each section's types live in the module named for it, and
//! `validate.rs` checks the whole.
use crate::pool::PoolConfig;
use crate::queue::QueueOptions;
use crate::retry::RetryPolicy;
use chatter_jobs::Registry;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod api;
mod handlers;
mod limits;
mod queue;
mod validate;
pub use api::{ApiKeySettings, ApiSettings, HttpSettings, MIN_JWT_SECRET};
pub use handlers::{
    ChatProviderSettings, ChunkingSettings, EmbeddingSettings, ProviderKind, WorkflowsSettings,
};
pub use limits::{KindLimits, LimitsSettings};
pub use queue::QueueSettings;
pub use validate::networks;

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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Redis (`REDIS_URL`); unset with no `database_url` either: the embedded SQLite mode.
    pub redis_url: Option<String>,
    /// The embedded mode's SQLite file (`CW_SQLITE`, `--sqlite`): queue and store in it, no
    /// services. Default `./chatter-worker.db` when neither `redis_url` nor `database_url` is set.
    pub sqlite: Option<PathBuf>,
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

impl Default for Settings {
    fn default() -> Self {
        let pool = PoolConfig::default();
        let q = QueueOptions::default();
        Self {
            redis_url: None,
            sqlite: None,
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

/// Redis when none is configured but PostgreSQL is (the production pair on one machine).
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

impl Settings {
    /// The SQLite file of the embedded mode: `sqlite` when set, else `./chatter-worker.db` when
    /// neither Redis nor PostgreSQL is configured; `None` for Redis (+ PostgreSQL).
    pub fn embedded(&self) -> Option<PathBuf> {
        self.sqlite.clone().or_else(|| {
            (self.redis_url.is_none() && self.database_url.is_none())
                .then(|| PathBuf::from(crate::sqlite::DEFAULT_PATH))
        })
    }

    /// The Redis URL in use when not embedded.
    pub fn redis_url(&self) -> &str {
        self.redis_url.as_deref().unwrap_or(DEFAULT_REDIS_URL)
    }

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
