//! `bench`: run one benchmark (queue, chunking, embedding, workflows, API) with the settings'
//! Redis and PostgreSQL (the queue's also on a SQLite file: `--backend`), and print its report
//! (Debug text, or JSON). The benchmarks' flags are in `crate::bench::args`, re-exported here;
//! the benchmarks are in `crate::bench`.
pub use crate::bench::args::{
    ChunkingBenchArgs, EmbeddingBenchArgs, QueueBenchArgs, QueueBenchBackend, WorkflowsBenchArgs,
};
use crate::bench::{self, BenchOptions};
use crate::config::Settings;
use clap::Subcommand;

pub async fn run(s: &Settings, what: BenchWhat, json: bool) -> anyhow::Result<()> {
    match what {
        BenchWhat::Embedding(a) => {
            let report = bench::embedding::run(
                &a,
                s.embedding.model_dir.clone(),
                s.redis_url(),
                s.database_url.as_deref(),
            )
            .await
            .map_err(anyhow::Error::msg)?;
            print(json, &report);
        }
        BenchWhat::Workflows(a) => {
            if a.runs == 0 || a.concurrency == 0 || a.rounds == 0 || a.engine_runs == 0 {
                anyhow::bail!(
                    "--runs, --concurrency, --rounds and --engine-runs must be at least 1"
                );
            }
            let report = bench::workflows::run(&a, s.redis_url(), s.database_url.as_deref())
                .await
                .map_err(anyhow::Error::msg)?;
            print(json, &report);
        }
        BenchWhat::Api(a) => {
            if a.seconds == 0 || a.connections == 0 || a.rounds == 0 {
                anyhow::bail!("--seconds, --connections and --rounds must be at least 1");
            }
            let report = bench::api::run(&a, s.redis_url())
                .await
                .map_err(anyhow::Error::msg)?;
            print(json, &report);
        }
        BenchWhat::Chunking(a) => {
            let report = tokio::task::spawn_blocking(move || bench::chunking::run(&a))
                .await?
                .map_err(anyhow::Error::msg)?;
            print(json, &report);
        }
        BenchWhat::Queue(a) => {
            let report = bench::run(BenchOptions {
                redis_url: s.redis_url().to_string(),
                jobs: a.jobs,
                concurrency: a.concurrency,
                latency_samples: a.latency_samples,
                peer: !a.no_peer,
                backend: a.backend,
                sqlite_path: a.sqlite_path,
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            print(json, &report);
        }
    }
    Ok(())
}

fn print<T: serde::Serialize + std::fmt::Debug>(json: bool, v: &T) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{v:#?}");
    }
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// No-op jobs: enqueue/s, drain jobs/s, end-to-end jobs/s, enqueue->start p50/p99, with
    /// apalis-redis; `--backend sqlite|both` runs them on the embedded (SQLite) backend too.
    Queue(QueueBenchArgs),
    /// Extract + split real text (/usr/share/doc, the Rust docs): MB/s and chunks/s, with
    /// langchain-text-splitters' RecursiveCharacterTextSplitter on the same text.
    Chunking(ChunkingBenchArgs),
    /// The local model's chunks/s with sentence-transformers on the same chunks, then end-to-end
    /// ingestion into pgvector by a worker process (documents/s, chunks/s, peak RSS).
    Embedding(EmbeddingBenchArgs),
    /// A 10-node workflow against a local chat server answering at once: engine overhead per
    /// node (in memory, and checkpointed in PostgreSQL) and runs/s end to end through Redis and
    /// a worker pool, with LangGraph on the same graph and server.
    Workflows(WorkflowsBenchArgs),
    /// `POST /api/v1/jobs` under wrk (64 connections, loopback): requests/s and p99, with the
    /// Redis-direct enqueue rate of the same number of producers.
    Api(crate::bench::api::ApiBenchArgs),
}
