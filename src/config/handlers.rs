//! `[chunking]`, `[embedding]` and `[workflows]`: the settings of the job handlers that need
//! more than a queue (documents' sources and limits, the embedding provider and model, the chat
//! providers, tools and budgets of workflows). Defaults are the handlers' own; `crate::handlers`
//! builds the handlers from these.
use super::ConfigError;
use chatter_jobs::chunk::{self, extract::ExtractLimits, source::SourceConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
