//! `bench queue`'s own backends: the Redis backend under a fresh prefix, or the embedded one on
//! a SQLite file, each opened behind `Arc<dyn Backend>` (the same workload runs on either) and
//! cleaned up after; and the side-by-side figures of both (`--backend both`).
use super::{BenchOptions, SystemResult};
use crate::backend::{Backend, Queue, QueueOptions};
use crate::queue::{self, RedisBackend};
use crate::sqlite::SqliteBackend;
use apalis_core::error::BoxDynError;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// One of our backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Own {
    Redis,
    Sqlite,
}

impl Own {
    /// The system's name in the report (Redis keeps the name the scripts read).
    pub(super) fn system(self) -> &'static str {
        match self {
            Own::Redis => "chatter-worker",
            Own::Sqlite => "chatter-worker (sqlite)",
        }
    }
}

/// What to remove once the bench is done.
enum Cleanup {
    /// The prefix's keys.
    Redis { url: String, prefix: String },
    /// The temporary file (and its WAL files).
    File(PathBuf),
    /// A file the user named: kept.
    Keep,
}

/// A backend opened for the bench, and its queue.
pub(super) struct Opened {
    pub backend: Arc<dyn Backend>,
    pub queue: Arc<dyn Queue>,
    cleanup: Cleanup,
}

pub(super) async fn open(o: &BenchOptions, own: Own) -> Result<Opened, BoxDynError> {
    let run = ulid::Ulid::new();
    let (backend, queue_name, cleanup): (Arc<dyn Backend>, String, Cleanup) = match own {
        Own::Redis => {
            let prefix = format!("bench-{run}");
            let backend = RedisBackend::connect(&o.redis_url, &prefix).await?;
            let cleanup = Cleanup::Redis {
                url: o.redis_url.clone(),
                prefix,
            };
            (Arc::new(backend), "bench".into(), cleanup)
        }
        Own::Sqlite => {
            let (path, name, cleanup) = match &o.sqlite_path {
                // A file of the user's may hold earlier runs: a queue of this run's own.
                Some(p) => (p.clone(), format!("bench-{run}"), Cleanup::Keep),
                None => {
                    let p = std::env::temp_dir().join(format!("cw-bench-{run}.db"));
                    (p.clone(), "bench".into(), Cleanup::File(p))
                }
            };
            let backend = SqliteBackend::open(&path)
                .await
                .map_err(|e| format!("cannot open the SQLite file {}: {e}", path.display()))?;
            (Arc::new(backend), name, cleanup)
        }
    };
    let queue = backend.queue(&queue_name, QueueOptions::default());
    Ok(Opened {
        backend,
        queue,
        cleanup,
    })
}

impl Opened {
    /// Drop the handles and remove what the bench left.
    pub(super) async fn cleanup(self) -> Result<(), BoxDynError> {
        let Opened {
            backend,
            queue,
            cleanup,
        } = self;
        drop((backend, queue));
        match cleanup {
            Cleanup::Redis { url, prefix } => {
                queue::delete_matching(&url, &format!("{prefix}:*")).await?;
            }
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let p = PathBuf::from(p);
                    if let Err(e) = std::fs::remove_file(&p)
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(error = %e, path = %p.display(), "cannot remove the bench's SQLite file");
                    }
                }
            }
            Cleanup::Keep => {}
        }
        Ok(())
    }
}

/// One figure on both backends.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub metric: &'static str,
    pub redis: Option<f64>,
    pub sqlite: Option<f64>,
    /// sqlite / redis (for rates above 1 is faster; for latencies above 1 is slower).
    pub sqlite_over_redis: Option<f64>,
}

/// One compared figure: its name and how to read it from a run.
type Metric = (&'static str, fn(&SystemResult) -> Option<f64>);

/// The figures of the Redis and SQLite runs side by side.
pub(super) fn compare(redis: &SystemResult, sqlite: &SystemResult) -> Vec<Comparison> {
    let rows: [Metric; 5] = [
        ("enqueue_per_s", |r| r.enqueue_per_s),
        ("drain_per_s", |r| r.drain_per_s),
        ("end_to_end_per_s", |r| r.end_to_end_per_s),
        ("latency_p50_ms", |r| r.latency_p50_ms),
        ("latency_p99_ms", |r| r.latency_p99_ms),
    ];
    rows.into_iter()
        .map(|(metric, get)| {
            let (a, b) = (get(redis), get(sqlite));
            Comparison {
                metric,
                redis: a,
                sqlite: b,
                sqlite_over_redis: match (a, b) {
                    (Some(a), Some(b)) if a > 0.0 => Some(b / a),
                    _ => None,
                },
            }
        })
        .collect()
}
