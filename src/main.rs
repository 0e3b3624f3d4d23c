//! The `chatter-worker` command: run the workers, enqueue and inspect jobs, manage queues and
//! dead letters, benchmark. The flags are defined in `cli.rs`; every setting comes from a flag,
//! its environment variable (shown in `--help`) or the optional TOML file, in that order.
use anyhow::{Context, bail};
use chatter_worker::bench::{self, BenchOptions};
use chatter_worker::cli::{
    BenchWhat, Cli, Command, DeadAction, JobsAction, QueuesAction, WorkflowsAction,
};
use chatter_worker::config::Settings;
use chatter_worker::ingest::{self, IngestOptions};
use chatter_worker::jobs::chunk::extract::ExtractLimits;
use chatter_worker::jobs::chunk::extractor;
use chatter_worker::jobs::registry::queues;
use chatter_worker::jobs::{JobBuilder, Registry};
use chatter_worker::queue::{self, CancelResult, RedisQueue};
use chatter_worker::{handlers, runtime};
use clap::Parser;

/// mimalloc: the local model's forward passes allocate and free tens of MB per operation; glibc
/// returns those to the kernel each time (mmap), and page faults took ~15% of embedding time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ONNX Runtime allocates with the C allocator, which gives each new thread that allocates an
/// arena of its own (up to 8 per core) and keeps what is freed in each: the worker's embedding
/// passes run on changing blocking threads, and its peak RSS was 822 MB against 311 MB with one
/// arena, at the same speed (docs/PERFORMANCE.md). Rust's own allocations go to mimalloc.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The extractor child does its work before any runtime or thread exists: it runs under an
    // address-space limit, and a runtime's thread stacks would spend it.
    if let Command::ExtractDocument(a) = &cli.command {
        let limits = ExtractLimits {
            max_text_bytes: a.max_text_bytes,
            max_unzipped_bytes: a.max_unzipped_bytes,
            max_zip_ratio: a.max_zip_ratio,
            max_zip_entries: a.max_zip_entries,
        };
        std::process::exit(extractor::child_main(&a.doc_type, &limits));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async_main(cli));
}

async fn async_main(cli: Cli) {
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // html5ever warns about every oddity of real-world html it parses
                format!("{default_level},html5ever=error").into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut s = Settings::load(cli.config.as_deref())?;
    if let Some(u) = &cli.redis_url {
        s.redis_url = u.clone();
    }
    if let Some(p) = &cli.prefix {
        s.prefix = p.clone();
    }
    if let Some(u) = &cli.database_url {
        s.database_url = Some(u.clone());
    }
    if let Some(r) = &cli.storage_root {
        s.chunking.storage_root = Some(r.clone());
    }
    if let Some(d) = &cli.model_dir {
        s.embedding.model_dir = Some(d.clone());
    }
    if let Some(d) = &cli.onnxruntime {
        s.embedding.onnxruntime = Some(d.clone());
    }
    if let Some(p) = &cli.schedules {
        s.schedules = Some(p.clone());
    }
    Ok(s)
}

async fn queue_handle(s: &Settings, name: &str) -> anyhow::Result<RedisQueue> {
    let conn = queue::connect(&s.redis_url)
        .await
        .with_context(|| format!("connecting to {}", s.redis_url))?;
    Ok(RedisQueue::new(conn, &s.prefix, name, s.queue_options()))
}

/// Every queue recorded under the prefix plus every queue a job kind runs on.
async fn all_queues(s: &Settings, registry: &Registry) -> anyhow::Result<Vec<RedisQueue>> {
    let mut conn = queue::connect(&s.redis_url).await?;
    let mut names = queue::known_queues(&mut conn, &s.prefix).await?;
    names.extend(registry.queues());
    names.sort();
    names.dedup();
    Ok(names
        .iter()
        .map(|n| RedisQueue::new(conn.clone(), &s.prefix, n, s.queue_options()))
        .collect())
}

/// A queue by name, which must be known (recorded under the prefix, run by a kind, or
/// configured): a typo must not pause a queue nobody reads.
async fn known_queue(s: &Settings, registry: &Registry, name: &str) -> anyhow::Result<RedisQueue> {
    let all = all_queues(s, registry).await?;
    if let Some(q) = all.iter().find(|q| q.name() == name) {
        return Ok(q.clone());
    }
    if s.queues.iter().any(|q| q == name) {
        return queue_handle(s, name).await;
    }
    let mut known: Vec<&str> = all.iter().map(|q| q.name()).collect();
    known.extend(s.queues.iter().map(String::as_str));
    known.sort();
    known.dedup();
    bail!(
        "no queue {name:?} under prefix {:?}; known queues: {}",
        s.prefix,
        known.join(", ")
    )
}

/// The queue holding job `id`, searched across every known queue.
async fn find_job(s: &Settings, registry: &Registry, id: &str) -> anyhow::Result<RedisQueue> {
    for q in all_queues(s, registry).await? {
        if q.exists(id).await? {
            return Ok(q);
        }
    }
    bail!("no job {id:?} in any queue under prefix {:?}", s.prefix)
}

fn print<T: serde::Serialize + std::fmt::Debug>(json: bool, v: &T) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{v:#?}");
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let registry = Registry::builtin();
    let mut s = settings(&cli)?;
    match cli.command {
        Command::Run(a) => {
            if !a.queues.is_empty() {
                s.queues = a.queues;
            }
            if let Some(c) = a.concurrency {
                s.concurrency = c;
            }
            if let Some(h) = a.http_addr {
                s.http_addr = h;
            }
            if let Some(l) = a.lease {
                s.lease_secs = l.as_secs_f64();
            }
            if let Some(d) = a.shutdown_deadline {
                s.shutdown_deadline_secs = d.as_secs_f64();
            }
            if let Some(r) = a.retention {
                s.finished_retention_secs = r.as_secs_f64();
            }
            s.migrate |= a.migrate;
            s.scheduler &= !a.no_scheduler;
            let shutdown = runtime::shutdown_on_signals();
            let reports = runtime::run(s, registry, shutdown).await?;
            for r in reports {
                eprintln!(
                    "stopped {}: handed back {}, unflushed {}",
                    r.worker, r.handed_back, r.unflushed
                );
            }
        }
        Command::Enqueue(a) => {
            let spec = registry.resolve(&a.kind)?;
            let args: serde_json::Value = serde_json::from_str(&a.args)
                .with_context(|| format!("--args is not JSON: {}", a.args))?;
            let mut b = JobBuilder::new(&a.kind, &spec.queue)
                .arguments(args)
                .priority(a.priority)
                .max_retries(a.max_retries)
                .timeout(a.timeout);
            if let Some(d) = a.delay {
                b = b.delay(d);
            }
            if let Some(k) = a.idempotency_key {
                b = b.idempotency_key(k);
            }
            if let Some(n) = a.name {
                b = b.name(n);
            }
            let job = b.build();
            // The queue checks again; here first, so a too large job is refused before the
            // kind's own check walks it.
            queue::enqueue::check(std::slice::from_ref(&job), &s.queue_options().limits)?;
            (spec.check)(&job).map_err(|e| anyhow::anyhow!("{e}"))?;
            let q = queue_handle(&s, &spec.queue).await?;
            let r = q.enqueue(&job).await?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "id": r.id, "created": r.created, "queue": spec.queue })
                );
            } else {
                println!("{}", r.id);
            }
        }
        Command::Jobs { action } => match action {
            JobsAction::Show { id } => {
                let q = find_job(&s, &registry, &id).await?;
                let rec = q
                    .show(&id)
                    .await?
                    .with_context(|| format!("job {id} vanished"))?;
                println!("{}", serde_json::to_string_pretty(&rec)?);
            }
            JobsAction::Cancel { id } => {
                let q = find_job(&s, &registry, &id).await?;
                match q.cancel(&id).await? {
                    CancelResult::Cancelled => println!("cancelled {id}"),
                    CancelResult::Cancelling => {
                        println!("cancelling {id}: its worker was signalled")
                    }
                    CancelResult::NotFound => bail!("no job {id}"),
                    CancelResult::AlreadyFinished(st) => bail!("job {id} already ended: {st}"),
                }
            }
            JobsAction::Retry { id } => {
                let q = find_job(&s, &registry, &id).await?;
                if q.replay(Some(&id), 1).await? == 0 {
                    bail!("job {id} is not dead-lettered (only dead jobs can be retried)");
                }
                println!("replayed {id}");
            }
        },
        Command::Queues { action } => match action {
            None => {
                let mut all = Vec::new();
                for q in all_queues(&s, &registry).await? {
                    all.push(q.stats().await?);
                }
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                } else {
                    println!(
                        "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10}",
                        "queue",
                        "ready",
                        "scheduled",
                        "retrying",
                        "running",
                        "dead",
                        "finished",
                        "paused",
                        "workers",
                        "oldest_s"
                    );
                    for q in all {
                        println!(
                            "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10.1}",
                            q.queue,
                            q.ready,
                            q.scheduled,
                            q.retrying,
                            q.running,
                            q.dead,
                            q.finished,
                            q.paused,
                            q.workers,
                            q.oldest_ready_age_ms as f64 / 1000.0
                        );
                    }
                }
            }
            Some(QueuesAction::Pause { queue }) => {
                known_queue(&s, &registry, &queue).await?.pause().await?;
                println!("paused {queue}");
            }
            Some(QueuesAction::Resume { queue }) => {
                known_queue(&s, &registry, &queue).await?.resume().await?;
                println!("resumed {queue}");
            }
            Some(QueuesAction::Sweep { queue }) => {
                let queues = match queue {
                    Some(q) => vec![known_queue(&s, &registry, &q).await?],
                    None => all_queues(&s, &registry).await?,
                };
                let mut rows = Vec::new();
                for q in &queues {
                    let r = chatter_worker::sweep::Sweep {
                        config: Default::default(),
                        queues: vec![std::sync::Arc::new(q.clone())],
                        gates: std::sync::Arc::new(queue::cron_gate::RedisGates::new(
                            q.connection(),
                            &s.prefix,
                        )),
                    }
                    .run_once()
                    .await?;
                    rows.push(serde_json::json!({
                        "queue": q.name(), "checked": r.checked, "repaired": r.repaired,
                        "dead_lettered": r.dead_lettered, "set_aside": r.set_aside,
                        "ready_check_skipped": r.ready_check_skipped,
                    }));
                }
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for r in rows {
                        println!(
                            "{:<14} checked {}  repaired {}  dead-lettered {}  set aside {}",
                            r["queue"].as_str().unwrap_or("?"),
                            r["checked"],
                            r["repaired"],
                            r["dead_lettered"],
                            r["set_aside"]
                        );
                    }
                }
            }
        },
        Command::Dead { action } => match action {
            DeadAction::List { queue, limit } => {
                let list = queue_handle(&s, &queue).await?.dead_list(0, limit).await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for r in list {
                        println!(
                            "{}  {}  attempts {}  {}",
                            r.id,
                            r.function_name.as_deref().unwrap_or("?"),
                            r.attempt,
                            r.error_message.unwrap_or_default()
                        );
                    }
                }
            }
            DeadAction::Replay(sel) => {
                let (id, limit) = sel.target().map_err(anyhow::Error::msg)?;
                let n = queue_handle(&s, &sel.queue)
                    .await?
                    .replay(id, limit)
                    .await?;
                println!("replayed {n}");
            }
            DeadAction::Purge(sel) => {
                let (id, limit) = sel.target().map_err(anyhow::Error::msg)?;
                let n = queue_handle(&s, &sel.queue)
                    .await?
                    .purge_dead(id, limit)
                    .await?;
                println!("purged {n}");
            }
        },
        Command::Migrate => {
            s.migrate = true;
            handlers::store(&s).await?;
            println!("migrated");
        }
        Command::Ingest(a) => {
            let store = handlers::store(&s).await?;
            let queue = queue_handle(&s, queues::CHUNKING).await?;
            let storage_root = s.chunking.storage_root.clone().context(
                "ingest needs the storage root the workers read from: --storage-root or CW_STORAGE_ROOT",
            )?;
            let options = IngestOptions {
                paths: a.paths,
                owner: a.owner,
                storage_root,
                wait: a.wait,
                progress: !cli.json,
            };
            let done = ingest::ingest(&options, &store, &queue).await?;
            let failed = ingest::report(&done, cli.json)?;
            if failed > 0 {
                eprintln!("{failed} of {} files failed or were skipped", done.len());
                std::process::exit(2);
            }
        }
        Command::Workflows {
            action: WorkflowsAction::Validate { files },
        } => {
            let mut reports = Vec::new();
            for f in &files {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                reports.push(match chatter_jobs::workflows::parse_and_validate(&text) {
                    Ok(wf) => serde_json::json!({
                        "file": f, "valid": true, "name": wf.name,
                        "nodes": wf.nodes.len(), "edges": wf.edges.len(),
                    }),
                    Err(e) => serde_json::json!({
                        "file": f, "valid": false, "problems": e.problems,
                    }),
                });
            }
            let invalid = reports.iter().filter(|r| r["valid"] == false).count();
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in &reports {
                    let file = r["file"].as_str().unwrap_or_default();
                    match r["problems"].as_array() {
                        None => {
                            println!("{file}: valid ({} nodes, {} edges)", r["nodes"], r["edges"])
                        }
                        Some(ps) => {
                            println!("{file}: invalid");
                            for p in ps {
                                let p: chatter_jobs::workflows::Problem =
                                    serde_json::from_value(p.clone())?;
                                println!("  {p}");
                            }
                        }
                    }
                }
            }
            if invalid > 0 {
                std::process::exit(1);
            }
        }
        Command::Workflows {
            action: WorkflowsAction::Run(a),
        } => workflow_run(&s, &registry, a, cli.json).await?,
        Command::Schedules => schedules(&s, &registry, cli.json).await?,
        Command::ApiKey { user, name, admin } => {
            let key = chatter_worker::api::auth::new_key();
            let hash = chatter_worker::api::auth::hash_key(&key);
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"key": key, "sha256": hash, "user": user, "name": name, "admin": admin})
                );
            } else {
                println!(
                    "key: {key}\n\n[[api.keys]]\nname = {name:?}\nsha256 = \"{hash}\"\nuser = {user:?}\nadmin = {admin}"
                );
            }
        }
        Command::Search(a) => {
            let store = handlers::store(&s).await?;
            let conn = queue::connect(&s.redis_url)
                .await
                .with_context(|| format!("connecting to {}", s.redis_url))?;
            let backend = queue::RedisBackend::new(&s.redis_url, &s.prefix, conn);
            let embedder = handlers::embedder(&s, &store, std::sync::Arc::new(backend))
                .await?
                .context(
                    "search needs an embedding provider: [embedding] in the config, or --model-dir",
                )?;
            if a.k == 0 {
                anyhow::bail!("--k must be at least 1");
            }
            let docs = (!a.documents.is_empty()).then_some(a.documents.as_slice());
            let hits = embedder
                .search(&a.query, a.k, a.owner.as_deref(), docs)
                .await
                .map_err(|e| anyhow::anyhow!("search: {e}"))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else {
                for (i, h) in hits.iter().enumerate() {
                    let text: String = h.content.chars().take(160).collect();
                    println!(
                        "{:>2}. {:.4}  {} #{}  {}",
                        i + 1,
                        h.score,
                        h.document_id,
                        h.chunk_index,
                        text.replace('\n', " ")
                    );
                }
            }
        }
        // Run in `main` before the runtime starts.
        Command::ExtractDocument(_) => {}
        Command::Bench {
            what: BenchWhat::Embedding(a),
        } => {
            let report = bench::embedding::run(
                &a,
                s.embedding.model_dir.clone(),
                &s.redis_url,
                s.database_url.as_deref(),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            print(cli.json, &report);
        }
        Command::Bench {
            what: BenchWhat::Workflows(a),
        } => {
            if a.runs == 0 || a.concurrency == 0 || a.rounds == 0 || a.engine_runs == 0 {
                anyhow::bail!(
                    "--runs, --concurrency, --rounds and --engine-runs must be at least 1"
                );
            }
            let report = bench::workflows::run(&a, &s.redis_url, s.database_url.as_deref())
                .await
                .map_err(anyhow::Error::msg)?;
            print(cli.json, &report);
        }
        Command::Bench {
            what: BenchWhat::Api(a),
        } => {
            if a.seconds == 0 || a.connections == 0 || a.rounds == 0 {
                anyhow::bail!("--seconds, --connections and --rounds must be at least 1");
            }
            let report = bench::api::run(&a, &s.redis_url)
                .await
                .map_err(anyhow::Error::msg)?;
            print(cli.json, &report);
        }
        Command::Bench {
            what: BenchWhat::Chunking(a),
        } => {
            let report = tokio::task::spawn_blocking(move || bench::chunking::run(&a))
                .await?
                .map_err(anyhow::Error::msg)?;
            print(cli.json, &report);
        }
        Command::Bench {
            what:
                BenchWhat::Queue {
                    jobs,
                    concurrency,
                    latency_samples,
                    no_peer,
                },
        } => {
            let report = bench::run(BenchOptions {
                redis_url: s.redis_url.clone(),
                jobs,
                concurrency,
                latency_samples,
                peer: !no_peer,
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            print(cli.json, &report);
        }
    }
    Ok(())
}

/// `workflows run`: enqueue, and with `--wait` follow the job to its end.
async fn workflow_run(
    s: &Settings,
    registry: &Registry,
    a: chatter_worker::cli::WorkflowRunArgs,
    json: bool,
) -> anyhow::Result<()> {
    use chatter_jobs::kinds::workflows::{RunWorkflowArgs, run_job};
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let definition: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", a.file.display()))?;
    let inputs: serde_json::Value = serde_json::from_str(&a.input)
        .with_context(|| format!("--input is not JSON: {}", a.input))?;
    let job = run_job(&RunWorkflowArgs {
        definition: Some(definition),
        definition_id: None,
        inputs,
        owner: a.owner.clone(),
        execution_id: None,
    })
    .priority(a.priority)
    .build();
    let spec = registry.resolve(&job.function_name)?;
    queue::enqueue::check(std::slice::from_ref(&job), &s.queue_options().limits)?;
    (spec.check)(&job).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let q = queue_handle(s, &spec.queue).await?;
    let r = q.enqueue(&job).await?;
    if !a.wait {
        if json {
            println!(
                "{}",
                serde_json::json!({"id": r.id, "execution_id": r.id, "queue": spec.queue})
            );
        } else {
            println!("{}", r.id);
        }
        return Ok(());
    }
    let until = std::time::Instant::now() + a.wait_timeout;
    let rec = loop {
        let rec = q
            .show(&r.id)
            .await?
            .with_context(|| format!("job {} vanished", r.id))?;
        if matches!(rec.status.as_str(), "completed" | "failed" | "cancelled") {
            break rec;
        }
        if std::time::Instant::now() >= until {
            bail!(
                "job {} still {} after {:?}",
                r.id,
                rec.status,
                a.wait_timeout
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let out = serde_json::json!({
        "id": r.id, "execution_id": r.id, "status": rec.status,
        "result": rec.result, "error": rec.error_message,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match rec.result.as_ref().and_then(|v| v.get("response")) {
            Some(serde_json::Value::String(t)) => println!("{t}"),
            _ => println!("{}", serde_json::to_string_pretty(&out)?),
        }
    }
    if rec.status != "completed" {
        eprintln!(
            "run {} {}: {}",
            r.id,
            rec.status,
            rec.error_message.unwrap_or_default()
        );
        std::process::exit(1);
    }
    Ok(())
}

/// `schedules`: every schedule with its next fire and its last (from Redis).
async fn schedules(s: &Settings, registry: &Registry, json: bool) -> anyhow::Result<()> {
    let path = s
        .schedules_path()
        .context("no schedules file: give --schedules or create jobs/schedules.toml")?;
    let list = chatter_worker::cron::load(&path, registry).map_err(anyhow::Error::msg)?;
    let conn = queue::connect(&s.redis_url)
        .await
        .with_context(|| format!("connecting to {}", s.redis_url))?;
    let gate = queue::cron_gate::RedisGates::new(conn, &s.prefix);
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for sc in &list {
        let last = chatter_worker::backend::CronGate::last_fire(&gate, &sc.spec.name).await?;
        let ts = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339())
        };
        rows.push(serde_json::json!({
            "name": sc.spec.name, "cron": sc.spec.cron, "timezone": sc.spec.timezone,
            "kind": sc.spec.kind, "queue": sc.queue, "enabled": sc.spec.enabled,
            "catch_up": sc.spec.catch_up,
            "next_fire": sc.spec.enabled.then(|| sc.next_after(now).map(|t| t.to_rfc3339())).flatten(),
            "last_fire": ts(last),
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<26} {:<18} {:<14} {:<27} last",
            "name", "cron", "timezone", "next"
        );
        for r in &rows {
            let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            let next = if r["enabled"] == true {
                text("next_fire")
            } else {
                "(disabled)".into()
            };
            println!(
                "{:<26} {:<18} {:<14} {:<27} {}",
                text("name"),
                text("cron"),
                text("timezone"),
                next,
                text("last_fire")
            );
        }
    }
    Ok(())
}
