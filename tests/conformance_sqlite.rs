//! The backend conformance suite (`tests/conformance/suite.rs`) on the embedded SQLite backend:
//! each test gets a file of its own in the temp dir, named by the harness's prefix; the test's
//! handle and its pools' backend are two `SqliteBackend`s (two pools) on that file.
mod common;
#[path = "conformance/suite.rs"]
mod suite;

use chatter_worker::backend::Backend;
use chatter_worker::sqlite::SqliteBackend;
use std::path::PathBuf;
use std::sync::Arc;

/// The test's SQLite file (removed with its WAL files first, should an earlier run have left it).
fn file_of(h: &common::Harness) -> PathBuf {
    std::env::temp_dir().join(format!("cw-conformance-{}.db", h.prefix))
}

async fn open(h: &common::Harness) -> SqliteBackend {
    SqliteBackend::open(&file_of(h))
        .await
        .expect("open the test's SQLite file")
}

/// The backend the tests act through, and the one their pools run on: both SQLite, one file.
fn backends_for(h: &common::Harness) -> (Arc<dyn Backend>, Arc<dyn Backend>) {
    let path = file_of(h);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // The suite asks synchronously; every suite test runs on a multi-threaded runtime.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            let tests: Arc<dyn Backend> = Arc::new(open(h).await);
            let pools: Arc<dyn Backend> = Arc::new(open(h).await);
            (tests, pools)
        })
    })
}

/// Probe: a retrying job's run-at (ms), read from the jobs table itself.
async fn retry_run_at(h: &common::Harness, queue: &str, id: &str) -> Option<u64> {
    let b = open(h).await;
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT run_at_ms FROM cw_jobs WHERE queue = ?1 AND id = ?2 AND status = 'retrying'",
    )
    .bind(queue)
    .bind(id)
    .fetch_optional(b.pool())
    .await
    .unwrap();
    b.pool().close().await;
    at.map(|t| t as u64)
}

/// Probe: the live `job.progress` event bodies of this file's channel (subscribed when this
/// returns).
async fn progress_events(
    h: &common::Harness,
    _queue: &str,
) -> futures::stream::BoxStream<'static, String> {
    use futures::StreamExt;
    let rx = chatter_worker::sqlite::live(&std::path::absolute(file_of(h)).unwrap()).subscribe();
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(body) => return Some((body, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    })
    .boxed()
}
