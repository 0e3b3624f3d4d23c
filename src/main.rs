//! The `chatter-worker` command: run the workers, enqueue and inspect jobs, manage queues and
//! dead letters, benchmark. The flags are defined in `cli/mod.rs` and each command runs in its
//! module of `cli/`; this file parses the line, sets up the allocator, the runtime and tracing,
//! and dispatches. Every setting comes from a flag, its environment variable (shown in `--help`)
//! or the optional TOML file, in that order.
use chatter_worker::cli::{
    Cli, Command, api_key, bench, context, dead, demo, documents, jobs, model, queues, run,
    schedules, workflows,
};
use chatter_worker::jobs::Registry;
use chatter_worker::jobs::chunk::extract::ExtractLimits;
use chatter_worker::jobs::chunk::extractor;
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

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let registry = Registry::builtin();
    let s = context::settings(&cli)?;
    let json = cli.json;
    match cli.command {
        Command::Run(a) => run::run(s, registry, a).await,
        Command::Enqueue(a) => jobs::enqueue(&s, &registry, a, json).await,
        Command::Jobs { action } => jobs::run(&s, &registry, action).await,
        Command::Queues { action } => queues::run(&s, &registry, action, json).await,
        Command::Dead { action } => dead::run(&s, action, json).await,
        Command::Migrate => documents::migrate(s).await,
        Command::Ingest(a) => documents::ingest(&s, a, json).await,
        Command::Search(a) => documents::search(&s, a, json).await,
        Command::Workflows { action } => workflows::run(&s, &registry, action, json).await,
        Command::Schedules => schedules::run(&s, &registry, json).await,
        Command::ApiKey { user, name, admin } => {
            api_key::run(user, name, admin, json);
            Ok(())
        }
        // Run in `main` before the runtime starts.
        Command::ExtractDocument(_) => Ok(()),
        Command::Bench { what } => bench::run(&s, what, json).await,
        Command::Model { action: _ } => model::run(s.embedding.model_dir.as_deref()).await,
        Command::Demo(a) => demo::run(s, registry, a).await,
    }
}
