//! A sentence-transformers model (all-MiniLM-L6-v2 class: BERT, mean pooling, normalised) run in
//! process on the CPU from a local model folder. The folder picks the runtime:
//! - `model.onnx`: ONNX Runtime, through `ort` with the library loaded at run time
//!   (`libonnxruntime.so`, e.g. from PyPI's `onnxruntime` wheel). It runs the int8 export about
//!   twice as fast as candle runs F32 here, in a third of the memory (docs/PERFORMANCE.md);
//! - `model.safetensors`: candle, pure Rust, F32: exact agreement with sentence-transformers.
//!
//! Both read `tokenizer.json` and `sentence_bert_config.json` from the folder. Inputs are
//! truncated to the model's `max_seq_length` and batched by length, as sentence-transformers does.
mod candle;
mod onnx;

use super::provider::{Provider, ProviderError, RequestLimits, Space, normalize};
use crate::chunk::tokenizer::Tokenizer as Counter;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

/// How a local model runs.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Inputs per forward pass. Default: 1 for ONNX Runtime (one input a pass is fastest there:
    /// no padding, cache-sized products), 4 for candle.
    pub batch: Option<usize>,
    /// Forward passes at once (0: one per core), each on its share of the cores and holding a
    /// batch's activations (and, for ONNX Runtime, its own session). Default 1: one pass
    /// already uses every core.
    pub lanes: Option<usize>,
    /// The ONNX Runtime library for `model.onnx` folders. Default: `ORT_DYLIB_PATH`, else
    /// `libonnxruntime.so` in the model's folder, else on the loader's path. One library per
    /// process: the first model loaded picks it.
    pub onnxruntime: Option<PathBuf>,
}

/// One tokenised batch, `n` inputs padded to `len` tokens.
pub(crate) struct Batch {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub n: usize,
    pub len: usize,
}

/// A runtime that runs the model's transformer.
pub(crate) trait Engine: Send + Sync {
    /// Forward passes it can run at once.
    fn lanes(&self) -> usize;
    /// The mean-pooled (not yet normalised) vectors of `batch`, on lane `lane`.
    fn forward(&self, lane: usize, batch: &Batch) -> Result<Vec<Vec<f32>>, String>;
}

/// Mean of the hidden states `[n, len, dims]` over each input's real tokens.
pub(crate) fn mean_pool(hidden: &[f32], batch: &Batch, dims: usize) -> Vec<Vec<f32>> {
    (0..batch.n)
        .map(|i| {
            let mut sum = vec![0f32; dims];
            let mut count = 0f32;
            for t in 0..batch.len {
                if batch.mask[i * batch.len + t] == 0 {
                    continue;
                }
                count += 1.0;
                let row = &hidden[(i * batch.len + t) * dims..][..dims];
                sum.iter_mut().zip(row).for_each(|(s, h)| *s += h);
            }
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        })
        .collect()
}

struct Model {
    engine: Box<dyn Engine>,
    tokenizer: Tokenizer,
    /// Counts tokens without truncation or padding (the chunker's counter for this model).
    counter: Counter,
    batch: usize,
}

pub struct Local {
    model: Arc<Model>,
    space: Space,
    dir: PathBuf,
    runtime: &'static str,
    /// One `embed` at a time: its forward passes already use every core.
    gate: Semaphore,
}

#[derive(Debug, thiserror::Error)]
#[error("local model {dir}: {message}")]
pub struct LoadError {
    pub dir: String,
    pub message: String,
}

/// The number of cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Local {
    /// Load the model in `dir`; `name` is the model's name in the vector space (and the
    /// `embedding_model` written to chunks).
    pub fn load(dir: &Path, name: &str, options: &LocalOptions) -> Result<Self, LoadError> {
        let err = |message: String| LoadError {
            dir: dir.display().to_string(),
            message,
        };
        let json = |file: &str| -> Result<serde_json::Value, LoadError> {
            let text =
                std::fs::read_to_string(dir.join(file)).map_err(|e| err(format!("{file}: {e}")))?;
            serde_json::from_str(&text).map_err(|e| err(format!("{file}: {e}")))
        };
        let config = json("config.json")?;
        let key = |k: &str| config.get(k).and_then(|v| v.as_u64()).map(|n| n as usize);
        let dims = key("hidden_size").ok_or_else(|| err("config.json: no hidden_size".into()))?;
        let positions = key("max_position_embeddings").unwrap_or(512);
        let max_seq = json("sentence_bert_config.json")
            .ok()
            .and_then(|v| v.get("max_seq_length")?.as_u64())
            .map_or(positions, |n| n as usize)
            .min(positions);
        let lanes = match options.lanes.unwrap_or(1) {
            0 => cores(),
            n => n,
        };
        let onnx = dir.join("model.onnx").is_file();
        let batch = options.batch.unwrap_or(if onnx { 1 } else { 4 }).max(1);
        let (engine, runtime): (Box<dyn Engine>, _) = if onnx {
            let lib = options.onnxruntime.as_deref();
            let e = onnx::Onnx::load(&dir.join("model.onnx"), lib, lanes, dims).map_err(err)?;
            (Box::new(e), "onnxruntime")
        } else {
            (
                Box::new(candle::Candle::load(dir, lanes).map_err(err)?),
                "candle",
            )
        };
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
                dimensions: dims,
            },
            model: Arc::new(Model {
                engine,
                tokenizer,
                counter,
                batch,
            }),
            dir: dir.to_path_buf(),
            runtime,
            gate: Semaphore::new(1),
        })
    }

    /// `onnxruntime` or `candle`.
    pub fn runtime(&self) -> &'static str {
        self.runtime
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

impl Model {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        // Longest first in batches of similar length: little padding, as sentence-transformers.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let groups: Vec<&[usize]> = order.chunks(self.batch).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        // One lane's loop: take the next group until none is left.
        let work = |lane: usize| -> Result<Vec<(usize, Vec<f32>)>, String> {
            let mut done = Vec::new();
            while let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                let batch = self.tokenize(group.iter().map(|&i| texts[i].as_str()))?;
                let mut vectors = self.engine.forward(lane, &batch)?;
                vectors.iter_mut().for_each(|v| normalize(v));
                done.extend(group.iter().copied().zip(vectors));
            }
            Ok(done)
        };
        let lanes = self.engine.lanes().min(groups.len()).max(1);
        let results: Vec<Result<_, String>> = if lanes == 1 {
            vec![work(0)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..lanes).map(|lane| s.spawn(move || work(lane))).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("an embedding lane panicked".into()))
                    })
                    .collect()
            })
        };
        let mut out = vec![Vec::new(); texts.len()];
        for r in results {
            for (i, v) in r? {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn tokenize<'t>(&self, texts: impl Iterator<Item = &'t str>) -> Result<Batch, String> {
        let enc = self
            .tokenizer
            .encode_batch(texts.collect::<Vec<_>>(), true)
            .map_err(|e| e.to_string())?;
        Ok(Batch {
            n: enc.len(),
            len: enc.first().map_or(0, |e| e.len()),
            ids: enc.iter().flat_map(|e| e.get_ids().to_vec()).collect(),
            mask: enc
                .iter()
                .flat_map(|e| e.get_attention_mask().to_vec())
                .collect(),
        })
    }
}

impl Provider for Local {
    fn space(&self) -> &Space {
        &self.space
    }

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_inputs: 16.max(self.model.batch * 4),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_skips_padding() {
        let batch = Batch {
            ids: vec![1, 2, 3, 1, 2, 0],
            mask: vec![1, 1, 1, 1, 1, 0],
            n: 2,
            len: 3,
        };
        // dims 2: input 0 tokens (1,1) (3,3) (5,5); input 1 (2,0) (4,0) and padding (99,99).
        let hidden = [1., 1., 3., 3., 5., 5., 2., 0., 4., 0., 99., 99.];
        assert_eq!(
            mean_pool(&hidden, &batch, 2),
            vec![vec![3., 3.], vec![3., 0.]]
        );
    }
}
