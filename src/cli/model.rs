//! The local embedding model, fetched once: `ensure_model` returns the folder of
//! all-MiniLM-L6-v2 (F32 safetensors + tokenizer, what `Local::load` runs with candle), downloading
//! it the first time from the model hub (`CW_MODEL_HUB`, default Hugging Face) into the cache
//! (`CW_MODEL_CACHE`, else `$XDG_CACHE_HOME/chatter-worker/models`, else
//! `$HOME/.cache/chatter-worker/models`: the folder `scripts/fetch-model.sh` fills too). Also the
//! `model fetch` command.
//!
//! Each file streams into `<file>.<pid>.partial` beside its final name, with a progress bar
//! (bytes, rate, eta) on stderr, and is renamed only once its length (and, for the weights, its
//! SHA-256) is right; the folder is marked `.complete` after the last file. An interrupted fetch
//! leaves no file that looks whole, and the next one fetches what is missing. A configured model
//! folder (`CW_MODEL_DIR`, `[embedding] model_dir`) is used as it is, never downloaded into.
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The model's folder name in the cache (also its name in the vector space).
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Where the files come from unless `CW_MODEL_HUB` says otherwise (`<base>/<file>`).
pub const DEFAULT_HUB: &str =
    "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main";
/// The files of a sentence-transformers folder: the first four are what the local provider
/// reads; the rest make the folder usable by sentence-transformers itself.
pub const FILES: [&str; 10] = [
    "config.json",
    "tokenizer.json",
    "sentence_bert_config.json",
    "model.safetensors",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
];
/// The weights' SHA-256 (the same file `scripts/fetch-model.sh` checks).
const WEIGHTS: (&str, &str) = (
    "model.safetensors",
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
);
/// Written last: the folder holds every file, whole.
pub const COMPLETE: &str = ".complete";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: the hub answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: got {got} bytes, the hub announced {want}")]
    Length { url: String, got: u64, want: u64 },
    #[error("GET {url}: sha256 {got}, expected {want} (a different or damaged file)")]
    Hash {
        url: String,
        got: String,
        want: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no model cache folder: set CW_MODEL_CACHE, XDG_CACHE_HOME or HOME")]
    NoCache,
    #[error("model folder {0} (CW_MODEL_DIR / [embedding] model_dir) is not a folder")]
    NotAFolder(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where the model comes from and where it is kept.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Files are fetched from `<base>/<file>`.
    pub base: String,
    /// The cache folder; the model lives in `<cache>/all-MiniLM-L6-v2`.
    pub cache: PathBuf,
}

impl Hub {
    /// `CW_MODEL_HUB` (default Hugging Face) and the cache folder from the environment.
    pub fn from_env() -> Result<Self, FetchError> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let cache = var("CW_MODEL_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("chatter-worker/models"))
            })
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/chatter-worker/models")))
            .ok_or(FetchError::NoCache)?;
        let base = std::env::var("CW_MODEL_HUB")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| DEFAULT_HUB.to_string());
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            cache,
        })
    }

    /// The model's folder in the cache.
    pub fn dir(&self) -> PathBuf {
        self.cache.join(MODEL_NAME)
    }
}

/// The model folder to run: `configured` as it is when given, else the cached download
/// (fetched now when absent or incomplete). Progress bars go to `progress`.
pub async fn ensure_model(
    configured: Option<&Path>,
    progress: &MultiProgress,
) -> Result<PathBuf, FetchError> {
    if let Some(dir) = configured {
        if !dir.is_dir() {
            return Err(FetchError::NotAFolder(dir.display().to_string()));
        }
        return Ok(dir.to_path_buf());
    }
    fetch(&Hub::from_env()?, progress).await
}

/// The hub's model in its cache folder, fetching what is missing.
pub async fn fetch(hub: &Hub, progress: &MultiProgress) -> Result<PathBuf, FetchError> {
    let dir = hub.dir();
    if dir.join(COMPLETE).is_file() {
        return Ok(dir);
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("chatter-worker/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| FetchError::Http {
            url: hub.base.clone(),
            source,
        })?;
    for file in FILES {
        let dest = dir.join(file);
        // Only a whole file ever has its final name.
        if dest.is_file() {
            continue;
        }
        let url = format!("{}/{file}", hub.base);
        let want = (file == WEIGHTS.0).then_some(WEIGHTS.1);
        download(&client, &url, &dest, want, progress).await?;
    }
    let marker = dir.join(COMPLETE);
    std::fs::write(&marker, b"").map_err(io_err(&marker))?;
    Ok(dir)
}

fn bar(progress: &MultiProgress, len: Option<u64>, name: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let b = progress.add(ProgressBar::new(len.unwrap_or(0)).with_style(style));
    b.set_message(name.to_string());
    b
}

/// Stream `url` into `dest` through a `.partial` file, renamed once whole.
async fn download(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    sha256: Option<&'static str>,
    progress: &MultiProgress,
) -> Result<(), FetchError> {
    let http = |source| FetchError::Http {
        url: url.to_string(),
        source,
    };
    let mut response = client.get(url).send().await.map_err(http)?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status(),
        });
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    // Per process: two fetches at once each write their own, and the renames agree.
    let partial = dest.with_file_name(format!("{name}.{}.partial", std::process::id()));
    let want = response.content_length();
    let shown = dest
        .strip_prefix(
            dest.parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("")),
        )
        .unwrap_or(dest)
        .display()
        .to_string();
    let b = bar(progress, want, &shown);
    let result = async {
        let file = std::fs::File::create(&partial).map_err(io_err(&partial))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut hash = Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            out.write_all(&chunk).map_err(io_err(&partial))?;
            hash.update(&chunk);
            got += chunk.len() as u64;
            b.set_position(got);
        }
        let file = out
            .into_inner()
            .map_err(|e| io_err(&partial)(e.into_error()))?;
        file.sync_all().map_err(io_err(&partial))?;
        if let Some(want) = want.filter(|&w| w != got) {
            return Err(FetchError::Length {
                url: url.to_string(),
                got,
                want,
            });
        }
        if let Some(want) = sha256 {
            let got = hex::encode(hash.finalize());
            if got != want {
                return Err(FetchError::Hash {
                    url: url.to_string(),
                    got,
                    want,
                });
            }
        }
        std::fs::rename(&partial, dest).map_err(io_err(dest))
    }
    .await;
    if result.is_err() {
        b.abandon();
        // What was written is of no use; the next fetch starts the file again.
        let _ = std::fs::remove_file(&partial);
    } else {
        b.finish();
    }
    result
}

/// `model fetch`: make sure the model is here and print its folder.
pub async fn run(configured: Option<&Path>) -> anyhow::Result<()> {
    let dir = ensure_model(configured, &MultiProgress::new()).await?;
    println!("{}", dir.display());
    Ok(())
}

/// The embedded mode's default provider: with no `[embedding]` provider, model folder, key or
/// URL configured, the local model (fetched once into the cache). A process that names its own
/// provider, or runs on Redis + PostgreSQL, is left as configured.
pub async fn embedded_default(s: &mut crate::config::Settings) -> anyhow::Result<()> {
    let e = &s.embedding;
    let unset = e.provider.is_none()
        && e.model_dir.is_none()
        && e.api_key.is_none()
        && e.base_url.is_none();
    if s.embedded().is_some() && unset {
        let dir = ensure_model(None, &MultiProgress::new()).await?;
        s.embedding.model_dir = Some(dir);
    }
    Ok(())
}
