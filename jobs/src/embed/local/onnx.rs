//! The ONNX Runtime runtime: `model.onnx` (e.g. the int8 export) through `ort`, with
//! `libonnxruntime.so` loaded at run time, so nothing is downloaded or linked at build time.
use super::{Batch, Engine, cores, mean_pool};
use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::{RunOptions, Session};
use ort::value::Tensor;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// ONNX Runtime allows one environment per process; the first model loaded picks the library.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The library: the one asked for, else `ORT_DYLIB_PATH`, else `libonnxruntime.so` in the model's
/// folder (where scripts/fetch-model.sh puts it), else on the loader's path.
fn environment(lib: Option<&Path>, dir: &Path) -> Result<&'static Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            let beside = dir.join("libonnxruntime.so");
            let path = match (lib, std::env::var_os("ORT_DYLIB_PATH")) {
                (Some(p), _) => p.to_path_buf(),
                (None, Some(p)) if !p.is_empty() => p.into(),
                _ if beside.is_file() => beside,
                _ => "libonnxruntime.so".into(),
            };
            ort::init_from(&path)
                .map_err(|e| {
                    format!(
                        "ONNX Runtime library: {e} (set [embedding] onnxruntime, CW_ONNXRUNTIME \
                         or ORT_DYLIB_PATH; scripts/fetch-model.sh fetches one)"
                    )
                })?
                .with_name("chatter-worker")
                .build()
                .map_err(|e| format!("ONNX Runtime environment: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

pub(crate) struct Onnx {
    /// One session per lane (a session runs one pass at a time), each on its share of the cores.
    /// Each holds its own F32 copy of the weights (the int8 export's are widened at load).
    sessions: Vec<Mutex<(Session, RunOptions)>>,
    /// Whether the graph takes `token_type_ids` (some exports drop it).
    token_types: bool,
    dims: usize,
}

impl Onnx {
    pub fn load(
        model: &Path,
        lib: Option<&Path>,
        lanes: usize,
        dims: usize,
    ) -> Result<Self, String> {
        let env = environment(lib, model.parent().unwrap_or(Path::new(".")))?;
        let threads = (cores() / lanes.max(1)).max(1);
        let e = |e: ort::Error<_>| format!("model.onnx: {e}");
        // The lanes' sessions share one copy of the prepacked weights.
        let weights = PrepackedWeights::new();
        let sessions = (0..lanes.max(1))
            .map(|_| {
                Session::builder(env)
                    .map_err(|e| format!("model.onnx: {e}"))?
                    .with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(e)?
                    .with_memory_pattern(false)
                    .map_err(e)?
                    .with_prepacked_weights(&weights)
                    .map_err(e)?
                    .with_intra_threads(threads)
                    .map_err(e)?
                    .with_inter_threads(1)
                    .map_err(e)?
                    .commit_from_file(model)
                    .map_err(|e| format!("model.onnx: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names = |outlets: &[ort::value::Outlet]| -> Vec<String> {
            outlets.iter().map(|o| o.name().to_string()).collect()
        };
        let (inputs, outputs) = (names(sessions[0].inputs()), names(sessions[0].outputs()));
        for need in ["input_ids", "attention_mask"] {
            if !inputs.iter().any(|n| n == need) {
                return Err(format!(
                    "model.onnx has no input {need:?} (inputs: {inputs:?})"
                ));
            }
        }
        if outputs.first().map(String::as_str) != Some("last_hidden_state") {
            return Err(format!(
                "model.onnx: expected the output last_hidden_state first, found {outputs:?}"
            ));
        }
        Ok(Self {
            token_types: inputs.iter().any(|n| n == "token_type_ids"),
            // The session's arena keeps a pass's buffers for the next: at one input a pass
            // that is a few MB. Shrinking it after each pass hands them to the C allocator,
            // which fragments: the worker's peak RSS went from 400 MB to 950 MB.
            sessions: sessions
                .into_iter()
                .map(|s| Ok(Mutex::new((s, RunOptions::new()?))))
                .collect::<Result<_, ort::Error>>()
                .map_err(|e| format!("run options: {e}"))?,
            dims,
        })
    }
}

impl Engine for Onnx {
    fn lanes(&self) -> usize {
        self.sessions.len()
    }

    fn forward(&self, lane: usize, batch: &Batch) -> Result<Vec<Vec<f32>>, String> {
        let shape = [batch.n as i64, batch.len as i64];
        let tensor = |v: &[u32]| {
            Tensor::from_array((shape, v.iter().map(|&x| x as i64).collect::<Vec<i64>>()))
                .map_err(|e| e.to_string())
        };
        let mut inputs = ort::inputs![
            "input_ids" => tensor(&batch.ids)?,
            "attention_mask" => tensor(&batch.mask)?,
        ];
        if self.token_types {
            let zeros = Tensor::from_array((shape, vec![0i64; batch.n * batch.len]))
                .map_err(|e| e.to_string())?;
            inputs.push(("token_type_ids".into(), zeros.into()));
        }
        let mut guard = self
            .sessions
            .get(lane)
            .ok_or("no such lane")?
            .lock()
            .map_err(|_| "an ONNX session panicked")?;
        let (session, run) = &mut *guard;
        let out = session
            .run_with_options(inputs, run)
            .map_err(|e| e.to_string())?;
        let (shape, hidden) = out[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let want = [batch.n as i64, batch.len as i64, self.dims as i64];
        if shape[..] != want[..] {
            return Err(format!(
                "model.onnx gave shape {shape:?}, expected {want:?}"
            ));
        }
        Ok(mean_pool(hidden, batch, self.dims))
    }
}
