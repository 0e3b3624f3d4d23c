//! The job handlers this process can run, built from the settings: with a database, the
//! document kinds (`chunk_document`) get their handlers; without one they stay contracts only
//! and their queues are not worked here.
use crate::config::{ConfigError, Settings};
use crate::outbox::RedisOutbox;
use chatter_jobs::Registry;
use chatter_jobs::chunk::extract::ExtractLimits;
use chatter_jobs::chunk::extractor::Extractor;
use chatter_jobs::chunk::guard::Guard;
use chatter_jobs::chunk::source::SourceConfig;
use chatter_jobs::chunk::tokenizer::Tokenizer;
use chatter_jobs::chunk::{ChunkSettings, Chunker};
use chatter_jobs::store::{Store, StoreError};
use redis::aio::ConnectionManager;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no database: set DATABASE_URL or --database-url")]
    NoDatabase,
}

/// Connect to the configured database (migrating it when asked).
pub async fn store(s: &Settings) -> Result<Store, HandlerError> {
    let url = s.database_url.as_deref().ok_or(HandlerError::NoDatabase)?;
    let store = Store::connect(url, s.db_max_connections).await?;
    if s.migrate {
        store.migrate().await?;
    }
    Ok(store)
}

/// The `chunk_document` settings from `[chunking]` and `[embedding]`.
pub fn chunk_settings(s: &Settings) -> Result<ChunkSettings, ConfigError> {
    let c = &s.chunking;
    let (tokenizer, model_limit) = match &s.embedding.model_dir {
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
        embed: c.embed,
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

/// Install every handler this process has what it needs for. Returns the store when there is
/// a database.
pub async fn install(
    s: &Settings,
    registry: &mut Registry,
    conn: ConnectionManager,
) -> Result<Option<Store>, HandlerError> {
    if s.database_url.is_none() {
        return Ok(None);
    }
    let store = store(s).await?;
    let outbox = Arc::new(RedisOutbox::new(conn, &s.prefix, s.queue_options()));
    let chunker = Chunker::new(chunk_settings(s)?, store.clone(), outbox)
        .map_err(|e| ConfigError::Invalid(format!("[chunking]: {e}")))?;
    Arc::new(chunker).install(registry);
    Ok(Some(store))
}
