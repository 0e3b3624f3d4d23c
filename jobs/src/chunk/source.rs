//! Where a document's bytes come from: a file under the storage root (paths that escape it, by
//! `..` or by a symlink, are refused) or an http(s) URL fetched through the SSRF [`Guard`] with
//! size and time limits. Errors say whether another attempt could help (`Retry`) or not (`Fatal`).
use super::guard::{BLOCKED, Guard};
use crate::JobError;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use url::Url;

/// Limits and places for loading documents.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Files must live under this folder (relative `file_path`s are taken from it); without one,
    /// only URL documents can be read (the worker's own folder is never a default).
    pub storage_root: Option<PathBuf>,
    /// Largest document accepted, in bytes (Chatter's upload limit: 50 MB).
    pub max_file_bytes: u64,
    /// Time limit of one URL fetch, redirects included.
    pub fetch_timeout: Duration,
    /// Redirect hops a fetch follows.
    pub max_redirects: usize,
    pub guard: Guard,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            storage_root: None,
            max_file_bytes: 50_000_000,
            fetch_timeout: Duration::from_secs(60),
            max_redirects: 5,
            guard: Guard::default(),
        }
    }
}

/// A loaded document: its bytes and the name its type is guessed from.
#[derive(Debug)]
pub struct Loaded {
    pub bytes: Vec<u8>,
    pub name: String,
}

fn fatal(m: String) -> JobError {
    JobError::Fatal(m)
}

fn too_large(size: u64, max: u64) -> JobError {
    fatal(format!(
        "file is {size} bytes, over the limit of {max} bytes ({:.1} MB)",
        max as f64 / 1e6
    ))
}

/// The HTTP client of the URL fetches: the guard resolves every name, checks every redirect.
pub fn http_client(cfg: &SourceConfig) -> Result<reqwest::Client, String> {
    let guard = cfg.guard.clone();
    let max_redirects = cfg.max_redirects;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            return attempt.error(format!("more than {max_redirects} redirects"));
        }
        match guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => {
                let msg = format!("redirect to {} {BLOCKED}: {why}", attempt.url());
                attempt.error(msg)
            }
        }
    });
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(cfg.guard.clone()))
        .redirect(policy)
        .no_proxy()
        .timeout(cfg.fetch_timeout)
        .connect_timeout(cfg.fetch_timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("chatter-worker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// Load the document at `file_path` (a path or an http(s) URL).
pub async fn load(
    cfg: &SourceConfig,
    client: &reqwest::Client,
    file_path: &str,
) -> Result<Loaded, JobError> {
    if let Ok(url) = Url::parse(file_path)
        && url.scheme().len() > 1
    {
        return fetch(cfg, client, url).await;
    }
    let Some(root) = &cfg.storage_root else {
        return Err(fatal(format!(
            "{file_path} is a file path, and no storage root is configured \
             (CW_STORAGE_ROOT or [chunking] storage_root)"
        )));
    };
    let path = resolve_under_root(root, Path::new(file_path))?;
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| io_error(&path, e))?;
    if !meta.is_file() {
        return Err(fatal(format!("{} is not a regular file", path.display())));
    }
    if meta.len() > cfg.max_file_bytes {
        return Err(too_large(meta.len(), cfg.max_file_bytes));
    }
    // Read through the limit: the file may have grown since its size was taken.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    tokio::fs::File::open(&path)
        .await
        .map_err(|e| io_error(&path, e))?
        .take(cfg.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| io_error(&path, e))?;
    if bytes.len() as u64 > cfg.max_file_bytes {
        return Err(too_large(bytes.len() as u64, cfg.max_file_bytes));
    }
    Ok(Loaded {
        bytes,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

/// A missing file is final; any other I/O trouble (an unmounted share, no file handles left)
/// may pass, so it is retried.
fn io_error(path: &Path, e: std::io::Error) -> JobError {
    if e.kind() == std::io::ErrorKind::NotFound {
        fatal(format!("file {} not found", path.display()))
    } else {
        JobError::Retry(format!("cannot read {}: {e}", path.display()))
    }
}

/// The real path of `path` (relative ones from `root`) when it lies under `root`.
pub fn resolve_under_root(root: &Path, path: &Path) -> Result<PathBuf, JobError> {
    let root = root.canonicalize().map_err(|e| {
        JobError::Retry(format!(
            "storage root {} is not usable: {e}",
            root.display()
        ))
    })?;
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let real = joined.canonicalize().map_err(|e| io_error(path, e))?;
    if !real.starts_with(&root) {
        return Err(fatal(format!(
            "path {} is outside the storage root {}",
            path.display(),
            root.display()
        )));
    }
    Ok(real)
}

async fn fetch(cfg: &SourceConfig, client: &reqwest::Client, url: Url) -> Result<Loaded, JobError> {
    cfg.guard
        .check_url(&url)
        .map_err(|why| fatal(format!("URL {url} {BLOCKED}: {why}")))?;
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| describe(&url, e))?;
    let status = resp.status();
    if !status.is_success() {
        let msg = format!("fetching {url}: HTTP {status}");
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            JobError::Retry(msg)
        } else {
            fatal(msg)
        });
    }
    if let Some(len) = resp.content_length()
        && len > cfg.max_file_bytes
    {
        return Err(too_large(len, cfg.max_file_bytes));
    }
    let name = name_for(
        resp.url(),
        resp.headers().get(reqwest::header::CONTENT_TYPE),
    );
    let mut bytes = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(part) = body.next().await {
        let part = part.map_err(|e| describe(&url, e))?;
        bytes.extend_from_slice(&part);
        if bytes.len() as u64 > cfg.max_file_bytes {
            return Err(too_large(bytes.len() as u64, cfg.max_file_bytes));
        }
    }
    Ok(Loaded { bytes, name })
}

/// A fetch error: refused by the guard or a bad URL is final; timeouts and connection trouble
/// are worth another attempt.
fn describe(url: &Url, e: reqwest::Error) -> JobError {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let msg = format!("fetching {url}: {chain}");
    if chain.contains(BLOCKED) || e.is_redirect() || e.is_builder() {
        fatal(msg)
    } else {
        JobError::Retry(msg)
    }
}

/// A name for type detection: the URL's last path segment, or one made from the content type.
fn name_for(url: &Url, content_type: Option<&reqwest::header::HeaderValue>) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default();
    if last.contains('.') {
        return last.to_string();
    }
    let ct = content_type
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ext = match ct.split(';').next().unwrap_or_default().trim() {
        "text/html" | "application/xhtml+xml" => "html",
        "text/markdown" => "md",
        "text/csv" => "csv",
        "application/json" => "json",
        "application/pdf" => "pdf",
        _ => "txt",
    };
    format!("download.{ext}")
}
