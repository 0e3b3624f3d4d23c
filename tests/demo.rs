//! `chatter-worker model fetch` and `chatter-worker demo`, run as a user would: the real binary
//! in a fresh empty folder, with no environment but PATH, HOME and the model hub's address (a
//! local server serving the files of `$CW_TEST_MODEL_DIR`, `tests/common/model_hub.rs`). No
//! Redis, no PostgreSQL: the demo runs embedded in `./chatter-worker.db`.
#[path = "common/model_hub.rs"]
mod model_hub;

use model_hub::ModelHub;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chatter-worker");

fn model_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CW_TEST_MODEL_DIR")
            .expect("CW_TEST_MODEL_DIR is not set: scripts/fetch-model.sh prints the folder"),
    )
}

fn fresh_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cw-{what}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the binary in `dir` with only PATH, HOME=`dir`, the cache under `dir` and the hub.
async fn chatter(dir: &Path, hub: &str, args: &[&str], limit: Duration) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("CW_MODEL_CACHE", dir.join("cache"))
        .env("CW_MODEL_HUB", hub)
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("chatter-worker {args:?} still running after {limit:?}"))
        .expect("run chatter-worker");
    eprintln!(
        "--- chatter-worker {args:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".partial") {
                found.push(p);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn model_is_fetched_once_and_an_interrupted_fetch_leaves_no_half_model() {
    let source = model_dir();
    let hub = ModelHub::start(source.clone()).await;
    let dir = fresh_dir("model");
    let cached = dir.join("cache/all-MiniLM-L6-v2");
    let limit = Duration::from_secs(120);

    // The weights cut off half-way: the fetch fails naming the URL, and nothing looks whole.
    hub.cut_short("/model.safetensors");
    let out = chatter(&dir, &hub.url, &["model", "fetch"], limit).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}/model.safetensors", hub.url)),
        "{err}"
    );
    assert!(!cached.join("model.safetensors").exists());
    assert!(!cached.join(".complete").exists());
    assert!(partials(&dir).is_empty(), "{:?}", partials(&dir));
    // The files before it were whole and are kept.
    assert!(cached.join("config.json").is_file());

    // Next time it fetches what is missing, and only that.
    hub.heal();
    let out = chatter(&dir, &hub.url, &["model", "fetch"], limit).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        cached.display().to_string()
    );
    assert_eq!(hub.requests("/config.json"), 1);
    assert_eq!(hub.requests("/model.safetensors"), 2);
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "1_Pooling/config.json",
    ] {
        assert_eq!(
            std::fs::read(cached.join(f)).unwrap(),
            std::fs::read(source.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(cached.join(".complete").is_file());
    assert!(partials(&dir).is_empty());

    // Once complete, nothing is asked of the hub.
    let before = hub.total_requests();
    let out = chatter(&dir, &hub.url, &["model", "fetch"], limit).await;
    assert!(out.status.success());
    assert_eq!(hub.total_requests(), before);

    // A hub without the model: the error names the URL and the status.
    let empty = ModelHub::start(fresh_dir("empty-hub")).await;
    let other = fresh_dir("model-404");
    let out = chatter(&other, &empty.url, &["model", "fetch"], limit).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}/config.json", empty.url)) && err.contains("404"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_embedded_in_an_empty_folder() {
    let hub = ModelHub::start(model_dir()).await;
    let dir = fresh_dir("demo");
    let out = chatter(
        &dir,
        &hub.url,
        &["demo", "--exit-after-ready", "--port", "0"],
        Duration::from_secs(1800),
    )
    .await;
    assert!(out.status.success(), "demo failed: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in\n{stdout}"))
            .to_string()
    };

    // The model came from the hub into the cache; the queue and store are in the folder's file.
    assert!(dir.join("cache/all-MiniLM-L6-v2/.complete").is_file());
    assert!(hub.requests("/model.safetensors") == 1);
    assert!(dir.join("chatter-worker.db").is_file());
    line("ingest: ");

    // The search found passages of our docs about retries.
    let search = line("search: ");
    let n: usize = search["search: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{search}"));
    assert!(n > 0, "{search}");
    let passages: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("search: "))
        .skip(1)
        .take(n)
        .collect();
    assert!(
        passages.iter().any(|p| {
            let p = p.to_lowercase();
            p.contains("retr") || p.contains("backoff")
        }),
        "{passages:#?}"
    );

    // The workflow completed with the retrieved passages as its output.
    assert_eq!(line("workflow: "), "workflow: completed");
    let output: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("workflow: "))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect::<Vec<_>>()
        .join("\n");
    // The top search passage (its first words, as printed) is among them.
    let top = passages[0].split_once(": ").map(|(_, t)| t).unwrap_or("");
    let words: String = top.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    let flat = output.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        !words.is_empty() && flat.contains(&words),
        "{words:?} not in\n{output}"
    );

    assert!(line("dashboard: ").contains("http://127.0.0.1:"));
    assert!(line("api key: ").contains("cwk_"));
}
