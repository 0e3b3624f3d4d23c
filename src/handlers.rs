//! The job handlers this process can run, built from the settings: with a database, the
//! document kinds get their handlers (`chunk_document`; `embed_chunks` when `[embedding]` has a
//! provider) and `run_workflow` its handler (`[workflows]`); without one they stay contracts
//! only and their queues are not worked here.
use crate::backend::Backend;
use crate::config::{ConfigError, ProviderKind, Settings};
use crate::outbox::BackendOutbox;
use crate::ratelimit::{Limits, SharedLimiter};
use chatter_jobs::Registry;
use chatter_jobs::chunk::extract::ExtractLimits;
use chatter_jobs::chunk::extractor::Extractor;
use chatter_jobs::chunk::guard::Guard;
use chatter_jobs::chunk::source::SourceConfig;
use chatter_jobs::chunk::tokenizer::Tokenizer;
use chatter_jobs::chunk::{ChunkSettings, Chunker};
use chatter_jobs::embed::limiter::RateLimiter;
use chatter_jobs::embed::local::{Local, LocalOptions};
use chatter_jobs::embed::openai::{OpenAi, OpenAiConfig};
use chatter_jobs::embed::provider::{Provider, RequestLimits};
use chatter_jobs::embed::{EmbedSettings, Embedder};
use chatter_jobs::flow::chat::{ChatClient, ChatConfig};
use chatter_jobs::flow::tools::Tools;
use chatter_jobs::flow::{Runner, WorkflowSettings};
use chatter_jobs::maintenance::Maintenance;
use chatter_jobs::store::{
    DocumentStore, MaintenanceStore, SqliteStore, Store, StoreError, StoreHealth, VectorStore,
    WorkflowStore,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no database: set DATABASE_URL or --database-url (or run embedded: no REDIS_URL)")]
    NoDatabase,
}

/// The configured store: PostgreSQL + pgvector, or the embedded SQLite file.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Postgres(Store),
    Sqlite(SqliteStore),
}

impl AnyStore {
    pub fn documents(&self) -> Arc<dyn DocumentStore> {
        match self {
            Self::Postgres(s) => Arc::new(s.clone()),
            Self::Sqlite(s) => Arc::new(s.clone()),
        }
    }
    pub fn workflows(&self) -> Arc<dyn WorkflowStore> {
        match self {
            Self::Postgres(s) => Arc::new(s.clone()),
            Self::Sqlite(s) => Arc::new(s.clone()),
        }
    }
    pub fn health(&self) -> Arc<dyn StoreHealth> {
        match self {
            Self::Postgres(s) => Arc::new(s.clone()),
            Self::Sqlite(s) => Arc::new(s.clone()),
        }
    }
}

/// Every role a store serves, for the handlers' constructors.
pub trait Roles:
    DocumentStore + VectorStore + WorkflowStore + MaintenanceStore + Clone + 'static
{
}
impl<T: DocumentStore + VectorStore + WorkflowStore + MaintenanceStore + Clone + 'static> Roles
    for T
{
}

/// The configured store: the embedded file's (opened and migrated), else PostgreSQL's.
pub async fn store(s: &Settings) -> Result<AnyStore, HandlerError> {
    if let Some(path) = s.embedded() {
        let pool = chatter_jobs::store::sqlite::open(&path).await?;
        return Ok(AnyStore::Sqlite(SqliteStore::new(pool)));
    }
    Ok(AnyStore::Postgres(postgres(s).await?))
}

/// Connect to the configured PostgreSQL (migrating it when asked).
pub async fn postgres(s: &Settings) -> Result<Store, HandlerError> {
    let url = s.database_url.as_deref().ok_or(HandlerError::NoDatabase)?;
    let store = match Store::connect(url, s.db_max_connections).await {
        // Unreachable (not misconfigured): start anyway, like with Redis down; `/readyz` says
        // 503 naming PostgreSQL and the jobs needing it retry until it answers. Migrating
        // needs it now.
        Err(e) if e.is_unreachable() && !s.migrate => {
            tracing::warn!(error = %e, "PostgreSQL unreachable at start; connecting on first use");
            Store::connect_lazy(url, s.db_max_connections)?
        }
        r => r?,
    };
    if s.migrate {
        store.migrate().await?;
    }
    Ok(store)
}

/// The `chunk_document` settings from `[chunking]` and `[embedding]`.
pub fn chunk_settings(s: &Settings) -> Result<ChunkSettings, ConfigError> {
    let c = &s.chunking;
    let kind = s.embedding.kind()?;
    let local_dir = s
        .embedding
        .model_dir
        .as_ref()
        .filter(|_| kind == ProviderKind::Local);
    let (tokenizer, model_limit) = match local_dir {
        Some(dir) => {
            let t = Tokenizer::from_file(&dir.join("tokenizer.json"))
                .map_err(|e| ConfigError::Invalid(format!("[embedding] model_dir: {e}")))?;
            (t, local_model_limit(dir))
        }
        None => (Tokenizer::cl100k(), 8191),
    };
    Ok(ChunkSettings {
        source: SourceConfig {
            storage_root: c.storage_root.clone(),
            max_file_bytes: (c.max_file_mb * 1e6) as u64,
            fetch_timeout: Duration::from_secs_f64(c.fetch_timeout_secs),
            max_redirects: c.max_redirects,
            guard: Guard::new(s.allow_networks()?),
        },
        limits: ExtractLimits {
            max_unzipped_bytes: (c.max_unzipped_mb * 1e6) as u64,
            max_zip_ratio: c.max_zip_ratio,
            max_text_bytes: (c.max_text_mb * 1e6) as usize,
            ..ExtractLimits::default()
        },
        // This very program, as `chatter-worker extract-document`, extracts in a child process.
        extractor: match std::env::current_exe() {
            Ok(exe) => Extractor::Subprocess {
                exe,
                memory_mb: c.extractor_memory_mb,
            },
            Err(e) => {
                return Err(ConfigError::Invalid(format!(
                    "cannot find this program to run the extractor: {e}"
                )));
            }
        },
        extract_timeout: Duration::from_secs_f64(c.extract_timeout_secs),
        max_chunks: c.max_chunks,
        embed_batch: c.embed_batch,
        embed: c.embed.unwrap_or(kind != ProviderKind::None),
        tokenizer,
        model_max_tokens: s.embedding.max_input_tokens.unwrap_or(model_limit),
    })
}

/// A sentence-transformers model's input limit in tokens, less its [CLS] and [SEP].
fn local_model_limit(dir: &Path) -> usize {
    let read = |name: &str, key: &str| -> Option<usize> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get(key)?.as_u64().map(|n| n as usize)
    };
    read("sentence_bert_config.json", "max_seq_length")
        .or_else(|| read("config.json", "max_position_embeddings"))
        .unwrap_or(512)
        .saturating_sub(2)
        .max(1)
}

/// The model's own vector size, for the OpenAI models whose size is known.
fn known_dimensions(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-large" => Some(3072),
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        _ => None,
    }
}

/// The configured embedding provider; None for `provider = none`.
pub fn provider(s: &Settings) -> Result<Option<Arc<dyn Provider>>, HandlerError> {
    let e = &s.embedding;
    let invalid =
        |m: String| HandlerError::Config(ConfigError::Invalid(format!("[embedding] {m}")));
    let model = e.model_name();
    match e.kind()? {
        ProviderKind::None => Ok(None),
        ProviderKind::Local => {
            let dir = e
                .model_dir
                .as_ref()
                .ok_or_else(|| invalid("provider = \"local\" needs model_dir".into()))?;
            let options = LocalOptions {
                batch: e.local_batch,
                lanes: e.local_lanes,
                onnxruntime: e.onnxruntime.clone(),
            };
            let local =
                Local::load(dir, &model, &options).map_err(|err| invalid(err.to_string()))?;
            Ok(Some(Arc::new(local)))
        }
        ProviderKind::OpenAi => {
            let dimensions = e
                .dimensions
                .or_else(|| known_dimensions(&model))
                .ok_or_else(|| {
                    invalid(format!(
                        "dimensions: the size of model {model:?} is not known; set it"
                    ))
                })?;
            let api_key = e
                .api_key
                .clone()
                .or_else(|| std::env::var("CW_EMBEDDING_API_KEY").ok())
                .or_else(|| std::env::var("OPENAI_API_KEY").ok())
                .filter(|k| !k.is_empty());
            let max_tokens = e
                .max_tokens_per_request
                .min(e.tokens_per_minute.map_or(usize::MAX, |t| t as usize));
            let config = OpenAiConfig {
                base_url: e
                    .base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key,
                send_dimensions: e.dimensions.is_some() && model.starts_with("text-embedding-3"),
                model,
                dimensions,
                limits: RequestLimits {
                    max_inputs: e.max_inputs_per_request,
                    max_tokens,
                },
                timeout: Duration::from_secs_f64(e.request_timeout_secs),
            };
            Ok(Some(Arc::new(OpenAi::new(config).map_err(invalid)?)))
        }
    }
}

/// The embedding handler's settings from `[embedding]`.
pub fn embed_settings(s: &Settings) -> EmbedSettings {
    let e = &s.embedding;
    EmbedSettings {
        max_retries: e.max_retries,
        max_retry_after: Duration::from_secs_f64(e.max_retry_after_secs),
        ef_search: e.ef_search,
        ..EmbedSettings::default()
    }
}

/// The provider account's shared rate limit.
pub fn limiter(s: &Settings, backend: &dyn Backend) -> Arc<dyn RateLimiter> {
    let e = &s.embedding;
    Arc::new(SharedLimiter::new(
        backend.rate_log(),
        Limits {
            window: Duration::from_secs_f64(e.rate_window_secs),
            requests: e.requests_per_minute,
            tokens: e.tokens_per_minute,
        },
    ))
}

/// The embedding handler (also what `search` runs with); None without a provider.
pub async fn embedder(
    s: &Settings,
    store: &AnyStore,
    backend: Arc<dyn Backend>,
) -> Result<Option<Arc<Embedder>>, HandlerError> {
    match store {
        AnyStore::Postgres(store) => embedder_on(s, store, backend).await,
        AnyStore::Sqlite(store) => embedder_on(s, store, backend).await,
    }
}

async fn embedder_on<S: VectorStore + Clone + 'static>(
    s: &Settings,
    store: &S,
    backend: Arc<dyn Backend>,
) -> Result<Option<Arc<Embedder>>, HandlerError> {
    let Some(provider) = provider(s)? else {
        return Ok(None);
    };
    let outbox = Arc::new(BackendOutbox::new(backend.clone(), s.queue_options()));
    let e = Embedder::new(
        provider,
        store.clone(),
        outbox,
        limiter(s, &*backend),
        embed_settings(s),
    )
    .await?;
    Ok(Some(Arc::new(e)))
}

/// The `run_workflow` handler: chat providers, tools and limits from `[workflows]`.
pub fn workflow_runner<S: WorkflowStore + Clone + 'static>(
    s: &Settings,
    store: &S,
    backend: Arc<dyn Backend>,
    embedder: Option<Arc<Embedder>>,
) -> Result<Runner, HandlerError> {
    let w = &s.workflows;
    let invalid =
        |m: String| HandlerError::Config(ConfigError::Invalid(format!("[workflows] {m}")));
    let mut providers = Vec::new();
    let base_url = w
        .base_url
        .clone()
        .or_else(|| std::env::var("CW_LLM_BASE_URL").ok())
        .filter(|u| !u.is_empty());
    if let Some(base_url) = base_url {
        let api_key = w
            .api_key
            .clone()
            .or_else(|| std::env::var("CW_LLM_API_KEY").ok())
            .or_else(|| std::env::var("OPENAI_API_KEY").ok())
            .filter(|k| !k.is_empty());
        providers.push(
            ChatClient::new(ChatConfig {
                name: "default".into(),
                base_url,
                api_key,
                timeout: Duration::from_secs_f64(w.request_timeout_secs),
            })
            .map_err(invalid)?,
        );
    }
    for (name, p) in &w.providers {
        providers.push(
            ChatClient::new(ChatConfig {
                name: name.clone(),
                base_url: p.base_url.clone(),
                api_key: p.api_key.clone(),
                timeout: Duration::from_secs_f64(
                    p.request_timeout_secs.unwrap_or(w.request_timeout_secs),
                ),
            })
            .map_err(|e| invalid(format!("providers.{name}: {e}")))?,
        );
    }
    let default_provider = w.default_provider.clone().or_else(|| {
        providers
            .iter()
            .any(|p| p.name() == "default")
            .then(|| "default".to_string())
    });
    let guard = Guard::new(crate::config::networks(
        "[workflows] allow_networks",
        &w.allow_networks,
    )?);
    let tools =
        Tools::new(w.tools.clone(), guard.clone()).map_err(|e| invalid(format!("tools: {e}")))?;
    let settings = WorkflowSettings {
        execution_timeout: Duration::from_secs_f64(w.execution_timeout_secs),
        step_timeout: Duration::from_secs_f64(w.step_timeout_secs),
        token_budget: w.token_budget,
        inline_delay: Duration::from_secs_f64(w.inline_delay_secs),
        max_steps: w.max_steps,
        prices: w.prices.clone().into_iter().collect(),
    };
    let outbox = Arc::new(BackendOutbox::new(backend, s.queue_options()));
    Runner::new(
        settings,
        store.clone(),
        outbox,
        providers,
        default_provider,
        tools,
        embedder,
        guard,
    )
    .map_err(invalid)
}

/// Install every handler this process has what it needs for. Returns the store when there is
/// one (PostgreSQL, or the embedded file).
pub async fn install(
    s: &Settings,
    registry: &mut Registry,
    backend: Arc<dyn Backend>,
) -> Result<Option<AnyStore>, HandlerError> {
    if s.database_url.is_none() && s.embedded().is_none() {
        return Ok(None);
    }
    let store = store(s).await?;
    install_store(s, registry, backend, &store).await?;
    Ok(Some(store))
}

/// Install every handler on `store` (one the caller opened).
pub async fn install_store(
    s: &Settings,
    registry: &mut Registry,
    backend: Arc<dyn Backend>,
    store: &AnyStore,
) -> Result<(), HandlerError> {
    match store {
        AnyStore::Postgres(st) => install_on(s, registry, backend, st).await?,
        AnyStore::Sqlite(st) => install_on(s, registry, backend, st).await?,
    }
    Ok(())
}

async fn install_on<S: Roles>(
    s: &Settings,
    registry: &mut Registry,
    backend: Arc<dyn Backend>,
    store: &S,
) -> Result<(), HandlerError> {
    let outbox = Arc::new(BackendOutbox::new(backend.clone(), s.queue_options()));
    let chunker = Chunker::new(chunk_settings(s)?, store.clone(), outbox)
        .map_err(|e| ConfigError::Invalid(format!("[chunking]: {e}")))?;
    Arc::new(chunker).install(registry);
    let embedder = embedder_on(s, store, backend.clone()).await?;
    if let Some(e) = &embedder {
        e.clone().install(registry);
    }
    Arc::new(workflow_runner(s, store, backend, embedder)?).install(registry);
    Arc::new(Maintenance::new(store.clone())).install(registry);
    Ok(())
}
