//! The Docker image's file set builds, and its runtime stage holds what the binary reads.
//!
//! No Docker engine runs here (nor in CI), so the image itself is not built. Instead the
//! Dockerfile is parsed and its stages emulated in a temporary directory standing for the image's
//! filesystem: the build stage's `COPY` lines copy exactly those paths of the build context (this
//! repository), where `cargo check --locked --workspace --all-targets` must pass (without
//! `migrations/`, `sqlx::migrate!` fails to compile); the runtime stage's `COPY`s from the context
//! go the same way, and the real binary, run from the runtime `WORKDIR`, must find and load the
//! cron schedules (`jobs/schedules.toml`, read relative to the working directory).
//!
//! `cargo check` runs in the dev profile with `CARGO_TARGET_DIR` = this repository's target dir:
//! the outer `cargo test --release` locks only `target/release`, and `target/debug` holds the
//! dependencies CI's `cargo clippy --workspace --all-targets` already checked (the same targets,
//! so the same dependency features), and only the workspace's own crates are checked again. The
//! time and the crates checked are printed.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One `COPY`: its `--from` stage if any, sources, destination.
#[derive(Debug)]
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

#[derive(Debug, Default)]
struct Stage {
    name: Option<String>,
    workdir: String,
    copies: Vec<Copy>,
    runs: Vec<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's stages, with line continuations joined and comments dropped.
fn stages(text: &str) -> Vec<Stage> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => cur.push_str(&format!("{head} ")),
            None => {
                cur.push_str(t);
                lines.push(std::mem::take(&mut cur));
            }
        }
    }
    let mut out: Vec<Stage> = Vec::new();
    for l in lines {
        let mut words = l.split_whitespace();
        let op = words.next().unwrap_or_default().to_uppercase();
        let args: Vec<&str> = words.collect();
        match op.as_str() {
            "FROM" => out.push(Stage {
                name: args
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case("as"))
                    .map(|i| args[i + 1].to_string()),
                workdir: "/".into(),
                ..Stage::default()
            }),
            "WORKDIR" => {
                let s = out.last_mut().expect("WORKDIR before FROM");
                s.workdir = Path::new(&s.workdir)
                    .join(args[0])
                    .to_string_lossy()
                    .into_owned();
            }
            "COPY" => {
                let from = args
                    .iter()
                    .find_map(|a| a.strip_prefix("--from="))
                    .map(str::to_string);
                let rest: Vec<String> = args
                    .iter()
                    .filter(|a| !a.starts_with("--"))
                    .map(|a| a.to_string())
                    .collect();
                let (dest, sources) = rest.split_last().expect("COPY needs a destination");
                out.last_mut().expect("COPY before FROM").copies.push(Copy {
                    from,
                    sources: sources.to_vec(),
                    dest: dest.clone(),
                });
            }
            "RUN" => out
                .last_mut()
                .expect("RUN before FROM")
                .runs
                .push(args.join(" ")),
            _ => {}
        }
    }
    out
}

/// Copy a file or a directory's contents (recursively), as `COPY` does.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// Apply a stage's `COPY`s from the build context into `root` (the image's `/`); the
/// `--from` ones are returned for the caller to check.
fn emulate<'a>(stage: &'a Stage, root: &Path) -> Vec<&'a Copy> {
    let mut from_stages = Vec::new();
    for c in &stage.copies {
        if c.from.is_some() {
            from_stages.push(c);
            continue;
        }
        let dest = Path::new(&stage.workdir).join(&c.dest);
        let dest = root.join(dest.strip_prefix("/").unwrap());
        let into_dir = c.dest.ends_with('/') || c.sources.len() > 1;
        for s in &c.sources {
            assert!(
                s != "." && !s.contains(".."),
                "COPY {s}: copy named paths, not the whole context"
            );
            let src = repo().join(s);
            assert!(src.exists(), "COPY {s}: no such path in the build context");
            let to = if into_dir && src.is_file() {
                dest.join(src.file_name().unwrap())
            } else {
                dest.clone()
            };
            copy_tree(&src, &to);
        }
    }
    from_stages
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cw-docker-{name}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The repository's target dir: this test binary is `<target>/<profile>/deps/<name>`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        })
}

#[test]
fn the_build_stage_file_set_compiles() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stages = stages(&text);
    let build = stages
        .iter()
        .find(|s| s.runs.iter().any(|r| r.contains("cargo build")))
        .expect("a stage running cargo build");
    let root = tempdir("build");
    emulate(build, &root);
    let workdir = root.join(build.workdir.trim_start_matches('/'));
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "migrations/postgres",
        "migrations/sqlite",
        "README.md",
        "docs/ARCHITECTURE.md",
    ] {
        assert!(
            workdir.join(needed).exists(),
            "the build stage does not COPY {needed}"
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let out = Command::new(&cargo)
        // The same targets as CI's `cargo clippy --workspace --all-targets`, so the same
        // dependency units (features included) are found in target/debug, already checked.
        .args(["check", "--locked", "--workspace", "--all-targets"])
        .current_dir(&workdir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo check of the image's file set failed:\n{err}"
    );
    let checked: Vec<&str> = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Checking "))
        .collect();
    let compiled = err
        .lines()
        .filter(|l| l.trim().starts_with("Compiling "))
        .count();
    // Warm, only the workspace's own crates (their path is the temporary copy's) are checked.
    let shown: Vec<&str> = checked.iter().take(12).copied().collect();
    println!(
        "cargo check --locked --workspace --all-targets of the Dockerfile's build-stage file set: \
         {took:.1?}, {} crates checked, {compiled} compiled (target dir {}): {}{}",
        checked.len(),
        target_dir().display(),
        shown.join(", "),
        if checked.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn the_runtime_stage_has_what_the_binary_reads() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stages = stages(&text);
    let build = stages
        .iter()
        .find(|s| s.runs.iter().any(|r| r.contains("cargo build")))
        .expect("a build stage");
    let runtime = stages.last().expect("a runtime stage");
    let root = tempdir("runtime");
    let from_build = emulate(runtime, &root);
    // The binary comes from where the build stage's `cargo build --release` put it.
    let built = format!(
        "{}/target/release/chatter-worker",
        build.workdir.trim_end_matches('/')
    );
    assert!(
        from_build
            .iter()
            .any(|c| c.from == build.name && c.sources == [built.clone()]),
        "the runtime stage does not COPY {built} from the build stage"
    );
    // Run from the runtime WORKDIR, as the image's ENTRYPOINT is: the schedules must load.
    let workdir = root.join(runtime.workdir.trim_start_matches('/'));
    let h = common::setup().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
        .args(["--json", "schedules"])
        .current_dir(&workdir)
        .env("REDIS_URL", &h.url)
        .env("CW_PREFIX", &h.prefix)
        .env_remove("CW_SCHEDULES")
        .env_remove("CW_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chatter-worker schedules in the runtime WORKDIR {}: {}",
        runtime.workdir,
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for want in [
        "database_maintenance",
        "document_archiving",
        "conversation_cleanup",
        "vector_store_maintenance",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_parser_reads_this_dockerfile_shape() {
    let s = stages(
        "FROM a AS build\nWORKDIR /src\nCOPY x y ./\n# c\nCOPY d d\nRUN cargo \\\n  build\nFROM b\nWORKDIR /app\nCOPY --from=build /src/t /bin/t\n",
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].name.as_deref(), Some("build"));
    assert_eq!(s[0].copies[0].sources, ["x", "y"]);
    assert_eq!(s[0].copies[0].dest, "./");
    assert_eq!(s[0].runs, ["cargo build"]);
    assert_eq!(s[1].workdir, "/app");
    assert_eq!(s[1].copies[0].from.as_deref(), Some("build"));
}
