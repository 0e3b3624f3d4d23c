//! A sentence-transformers model (all-MiniLM-L6-v2 class: BERT, mean pooling, normalised) run in
//! process on the CPU with candle, from a local model folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `sentence_bert_config.json`). Inputs are truncated to the model's
//! `max_seq_length` and batched by length, as sentence-transformers does.
use super::provider::{Provider, ProviderError, RequestLimits, Space, normalize};
use crate::chunk::tokenizer::Tokenizer as Counter;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

/// A vector and the position of its input.
type Indexed = (usize, Vec<f32>);

/// Inputs one forward pass takes, by default.
pub const DEFAULT_BATCH: usize = 4;

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    /// Counts tokens without truncation or padding (the chunker's counter for this model).
    counter: Counter,
    batch: usize,
    /// One single-threaded pool per core: each runs whole forward passes, so every operation
    /// (not only candle's matrix products) uses every core, and none waits on another's barrier.
    lanes: Vec<rayon::ThreadPool>,
}

pub struct Local {
    model: Arc<Model>,
    space: Space,
    dir: PathBuf,
    /// One forward pass at a time: each already uses every core.
    gate: Semaphore,
}

#[derive(Debug, thiserror::Error)]
#[error("local model {dir}: {message}")]
pub struct LoadError {
    pub dir: String,
    pub message: String,
}

impl Local {
    /// Load the model in `dir`; `name` is the model's name in the vector space (and the
    /// `embedding_model` written to chunks). `lanes` forward passes run at once (0: one per
    /// core), each on one thread, each holding a batch's activations.
    pub fn load(dir: &Path, name: &str, batch: usize, lanes: usize) -> Result<Self, LoadError> {
        let err = |message: String| LoadError {
            dir: dir.display().to_string(),
            message,
        };
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file)).map_err(|e| err(format!("{file}: {e}")))
        };
        let config: Config = serde_json::from_str(&read("config.json")?)
            .map_err(|e| err(format!("config.json: {e}")))?;
        let max_seq = read("sentence_bert_config.json")
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("max_seq_length")?.as_u64())
            .map(|n| n as usize)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let weights = load_weights(&dir.join("model.safetensors"))
            .map_err(|e| err(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let bert = BertModel::load(vb, &config).map_err(|e| err(format!("weights: {e}")))?;
        let path = dir.join("tokenizer.json");
        let counter = Counter::from_file(&path).map_err(|e| err(e.to_string()))?;
        let mut tokenizer =
            Tokenizer::from_file(&path).map_err(|e| err(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq,
                ..Default::default()
            }))
            .map_err(|e| err(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        Ok(Self {
            space: Space {
                provider: "local".into(),
                model: name.to_string(),
                dimensions: config.hidden_size,
            },
            model: Arc::new(Model {
                bert,
                tokenizer,
                counter,
                batch: batch.max(1),
                lanes: (0..if lanes == 0 {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    lanes
                })
                    .map(|i| {
                        rayon::ThreadPoolBuilder::new()
                            .num_threads(1)
                            .thread_name(move |_| format!("embed-lane-{i}"))
                            .build()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(format!("threads: {e}")))?,
            }),
            dir: dir.to_path_buf(),
            gate: Semaphore::new(1),
        })
    }

    /// Embed on this thread (CPU work: call from a blocking thread).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        self.model.embed(texts)
    }

    async fn run(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|_| ProviderError::retryable("local model closed"))?;
        let (model, texts) = (self.model.clone(), texts.to_vec());
        tokio::task::spawn_blocking(move || model.embed(&texts))
            .await
            .map_err(|e| ProviderError::retryable(format!("local model task: {e}")))?
            .map_err(|e| ProviderError::Final(format!("local model {}: {e}", self.dir.display())))
    }
}

/// A safetensors file's tensors, read one at a time (reading the whole file first, as candle's
/// `safetensors::load` does, holds the weights twice at load: +90 MB of peak memory here).
fn load_weights(
    path: &Path,
) -> Result<std::collections::HashMap<String, Tensor>, Box<dyn std::error::Error + Send + Sync>> {
    use std::io::{Read, Seek, SeekFrom};
    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: String,
        shape: Vec<usize>,
        data_offsets: (u64, u64),
    }
    let mut f = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100_000_000 {
        return Err("header too large".into());
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)?;
    let mut entries: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header)?;
    entries.remove("__metadata__");
    let base = 8 + header_len;
    let mut out = std::collections::HashMap::new();
    let mut buf = Vec::new();
    for (name, v) in entries {
        let e: Entry = serde_json::from_value(v)?;
        let dtype = match e.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            // Integer buffers (`position_ids`) are not weights; the model makes its own.
            _ => continue,
        };
        let (start, end) = e.data_offsets;
        let len = end
            .checked_sub(start)
            .ok_or_else(|| format!("tensor {name}: bad data offsets"))?;
        buf.resize(len as usize, 0);
        f.seek(SeekFrom::Start(base + start))?;
        f.read_exact(&mut buf)?;
        let t = Tensor::from_raw_buffer(&buf, dtype, &e.shape, &Device::Cpu)?;
        out.insert(name, t.to_dtype(DType::F32)?);
    }
    Ok(out)
}

impl Model {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        // Longest first in batches of similar length: little padding, as sentence-transformers.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let groups: Vec<&[usize]> = order.chunks(self.batch).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<Vec<Indexed>, String>> = std::thread::scope(|s| {
            let lanes: Vec<_> = self
                .lanes
                .iter()
                .take(groups.len().max(1))
                .map(|lane| {
                    let (groups, next) = (&groups, &next);
                    s.spawn(move || {
                        let mut done = Vec::new();
                        loop {
                            let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(group) = groups.get(g) else {
                                return Ok(done);
                            };
                            let batch: Vec<&str> =
                                group.iter().map(|&i| texts[i].as_str()).collect();
                            let vectors =
                                lane.install(|| self.forward(batch).map_err(|e| e.to_string()))?;
                            done.extend(group.iter().copied().zip(vectors));
                        }
                    })
                })
                .collect();
            lanes
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("an embedding lane panicked".into()))
                })
                .collect()
        });
        let mut out = vec![Vec::new(); texts.len()];
        for r in results {
            for (i, v) in r? {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(&self, batch: Vec<&str>) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
        let enc = self
            .tokenizer
            .encode_batch(batch, true)
            .map_err(|e| e.to_string())?;
        let (n, len) = (enc.len(), enc.first().map_or(0, |e| e.len()));
        let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = enc
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let ids = Tensor::from_vec(ids, (n, len), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (n, len), &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let sum = hidden.broadcast_mul(&m)?.sum(1)?;
        let count = m.sum(1)?.clamp(1e-9, f32::MAX)?;
        let mean = sum.broadcast_div(&count)?;
        let mut rows: Vec<Vec<f32>> = mean.to_vec2()?;
        rows.iter_mut().for_each(|v| normalize(v));
        Ok(rows)
    }
}

impl Provider for Local {
    fn space(&self) -> &Space {
        &self.space
    }

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_inputs: self.model.batch * 4,
            max_tokens: usize::MAX,
        }
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.model.counter.count(text)
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, ProviderError>> {
        Box::pin(self.run(texts))
    }

    fn limit_key(&self) -> String {
        // A local model's limit is its own CPU: nothing is shared between processes.
        format!("local:{}", self.space.model)
    }
}
