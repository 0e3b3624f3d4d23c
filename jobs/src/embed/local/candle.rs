//! The candle runtime: BERT in pure Rust, F32 weights from `model.safetensors`.
use super::{Batch, Engine, mean_pool};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;

pub(crate) struct Candle {
    bert: BertModel,
    dims: usize,
    /// One single-threaded pool per lane: each runs whole forward passes, so every operation
    /// (not only candle's matrix products) uses every core, and none waits on another's barrier.
    lanes: Vec<rayon::ThreadPool>,
}

impl Candle {
    pub fn load(dir: &Path, lanes: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| format!("config.json: {e}"))?;
        let config: Config =
            serde_json::from_str(&text).map_err(|e| format!("config.json: {e}"))?;
        let weights = load_weights(&dir.join("model.safetensors"))
            .map_err(|e| format!("model.safetensors: {e}"))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let bert = BertModel::load(vb, &config).map_err(|e| format!("weights: {e}"))?;
        let lanes = (0..lanes.max(1))
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("embed-lane-{i}"))
                    .build()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("threads: {e}"))?;
        Ok(Self {
            bert,
            dims: config.hidden_size,
            lanes,
        })
    }

    fn run(&self, batch: &Batch) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
        let ids = Tensor::from_slice(&batch.ids, (batch.n, batch.len), &Device::Cpu)?;
        let mask = Tensor::from_slice(&batch.mask, (batch.n, batch.len), &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        let hidden: Vec<f32> = hidden.flatten_all()?.to_vec1()?;
        Ok(mean_pool(&hidden, batch, self.dims))
    }
}

impl Engine for Candle {
    fn lanes(&self) -> usize {
        self.lanes.len()
    }

    fn forward(&self, lane: usize, batch: &Batch) -> Result<Vec<Vec<f32>>, String> {
        self.lanes[lane].install(|| self.run(batch).map_err(|e| e.to_string()))
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
