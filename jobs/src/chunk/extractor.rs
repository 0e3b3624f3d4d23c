//! Where extraction runs. Parsers of hostile files can do what no `catch_unwind` catches: a
//! compression bomb inside a PDF exhausts memory, a self-referencing PDF form overflows the
//! stack, a pathological input spins for ever. In production every document is therefore
//! extracted by a child process (`chatter-worker extract-document`) under an address-space
//! limit (`ulimit -v`) and killed at the time limit: a bad file kills only its child, and the
//! document fails with a message naming what happened. In-process extraction (the benchmark,
//! the library's users) runs on the blocking pool with panics caught.
use super::extract::{self, DocType, ExtractError, ExtractLimits};
use crate::JobError;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Exit code of the child for an extraction error (its message on stdout).
pub const EXIT_EXTRACT_ERROR: i32 = 3;
/// Exit code of the child for arguments it cannot read.
pub const EXIT_USAGE: i32 = 4;

#[derive(Debug, Clone)]
pub enum Extractor {
    InProcess,
    /// `exe extract-document ...` (this program), limited to `memory_mb` of address space.
    Subprocess {
        exe: PathBuf,
        memory_mb: u64,
    },
}

impl Extractor {
    /// Extract `bytes` of type `t` within `timeout`; stops (killing the child) on `cancel`.
    pub async fn extract(
        &self,
        bytes: Vec<u8>,
        t: DocType,
        limits: &ExtractLimits,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, JobError> {
        let work = async {
            match self {
                Self::InProcess => in_process(bytes, t, limits.clone()).await,
                Self::Subprocess { exe, memory_mb } => {
                    subprocess(exe, *memory_mb, bytes, t, limits).await
                }
            }
        };
        tokio::select! {
            r = tokio::time::timeout(timeout, work) => r.unwrap_or_else(|_| {
                Err(JobError::Fatal(format!(
                    "extraction took longer than the limit of {} s",
                    timeout.as_secs_f64()
                )))
            }),
            _ = cancel.cancelled() => Err(JobError::Cancelled),
        }
    }
}

async fn in_process(bytes: Vec<u8>, t: DocType, limits: ExtractLimits) -> Result<String, JobError> {
    let joined = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| extract::extract(&bytes, t, &limits))
    })
    .await;
    match joined {
        Ok(Ok(r)) => r.map_err(|e| JobError::Fatal(e.to_string())),
        // The same input would panic again: final.
        Ok(Err(_)) | Err(_) => Err(JobError::Fatal(format!(
            "corrupt {}: the extractor failed on it",
            t.as_str()
        ))),
    }
}

async fn subprocess(
    exe: &PathBuf,
    memory_mb: u64,
    bytes: Vec<u8>,
    t: DocType,
    limits: &ExtractLimits,
) -> Result<String, JobError> {
    // `ulimit -v` in a shell that then execs the extractor: the limit binds the child alone.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg((memory_mb * 1024).to_string())
        .arg(exe)
        .arg("extract-document")
        .args(["--type", t.as_str()])
        .args(["--max-text-bytes", &limits.max_text_bytes.to_string()])
        .args([
            "--max-unzipped-bytes",
            &limits.max_unzipped_bytes.to_string(),
        ])
        .args(["--max-zip-ratio", &limits.max_zip_ratio.to_string()])
        .args(["--max-zip-entries", &limits.max_zip_entries.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            JobError::Retry(format!("cannot start the extractor {}: {e}", exe.display()))
        })?;
    let mut stdin = child.stdin.take();
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A child that died early closes the pipe: its exit status says why.
            let _ = stdin.write_all(&bytes).await;
        }
    };
    let (_, out) = tokio::join!(feed, child.wait_with_output());
    let out = out.map_err(|e| JobError::Retry(format!("waiting for the extractor: {e}")))?;
    let said = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match out.status.code() {
        Some(0) => String::from_utf8(out.stdout)
            .map_err(|_| JobError::Fatal("the extractor wrote text that is not utf-8".into())),
        Some(EXIT_EXTRACT_ERROR) => Err(JobError::Fatal(said(&out.stdout))),
        code => {
            // Killed by a signal (stack overflow, abort on a failed allocation) or panicked.
            let how = match code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            };
            let detail = said(&out.stderr);
            let memory = if detail.contains("memory allocation") {
                format!(", out of memory: limit {memory_mb} MB")
            } else {
                String::new()
            };
            let last = detail.lines().last().unwrap_or_default();
            Err(JobError::Fatal(format!(
                "corrupt {}: the extractor crashed on it ({how}{memory}) {last}",
                t.as_str()
            )))
        }
    }
}

/// The child's side (`chatter-worker extract-document`): the document on stdin, its text on
/// stdout; exit 0, or [`EXIT_EXTRACT_ERROR`] with the message on stdout.
pub fn child_main(t: &str, limits: &ExtractLimits) -> i32 {
    let Some(t) = DocType::parse(t) else {
        eprintln!("unknown document type {t:?}");
        return EXIT_USAGE;
    };
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the document: {e}");
        return EXIT_USAGE;
    }
    let (code, out) = match std::panic::catch_unwind(|| extract::extract(&bytes, t, limits)) {
        Ok(Ok(text)) => (0, text),
        Ok(Err(e)) => (EXIT_EXTRACT_ERROR, e.to_string()),
        Err(_) => (
            EXIT_EXTRACT_ERROR,
            ExtractError::Corrupt {
                kind: "document",
                message: format!("the {} parser gave up on it", t.as_str()),
            }
            .to_string(),
        ),
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return EXIT_USAGE;
    }
    code
}
