//! Benchmarks: `queue` (no-op jobs through our Redis queue and apalis-redis) and `chunking`
//! (extraction and splitting of real text, with langchain-text-splitters), `embedding` and
//! `workflows` (with `chat_server`, a local OpenAI-compatible chat server), and `api` (the HTTP
//! enqueue route under wrk, with Redis-direct enqueues).
pub mod api;
pub mod args;
pub mod chat_server;
pub mod chunking;
pub mod embedding;
pub mod queue;
pub mod workflows;

pub use queue::{BenchOptions, BenchReport, SystemResult, run};

/// Run a Python peer from `bench/peers/<name>`: its `setup.sh` prints the venv's python (its last
/// line), then `script --json` with the arguments `args` adds prints its report as JSON (its last
/// line; what comes before is progress).
pub(crate) fn run_peer(
    name: &str,
    script: &str,
    args: impl FnOnce(&mut std::process::Command),
) -> Result<serde_json::Value, String> {
    use std::process::{Command, Stdio};
    let last_line = |out: &[u8]| {
        String::from_utf8_lossy(out)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench/peers")
        .join(name);
    let setup = Command::new("bash")
        .arg(dir.join("setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{name}/setup.sh: {e}"))?;
    let py = last_line(&setup.stdout);
    if !setup.status.success() || py.is_empty() {
        return Err(format!("{name}/setup.sh failed ({})", setup.status));
    }
    let mut cmd = Command::new(&py);
    cmd.arg(dir.join(script))
        .arg("--json")
        .stderr(Stdio::inherit());
    args(&mut cmd);
    let out = cmd.output().map_err(|e| format!("{py} {script}: {e}"))?;
    let line = last_line(&out.stdout);
    serde_json::from_str(&line).map_err(|e| format!("{script} said {line:?}: {e}"))
}
