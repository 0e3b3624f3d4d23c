//! The process-level guarantees on the embedded backend: real `chatter-worker run` processes on
//! one SQLite file (no Redis, no PostgreSQL). kill -9 of a worker holding jobs (rescued after
//! the lease, double executions bounded by the jobs in flight), SIGTERM (in-flight work finishes
//! within the deadline, or is handed back past it), malformed records (dead-lettered with the
//! reason, the jobs around them run), and cron across three processes (every tick once).
mod common;

use chatter_worker::backend::{Backend, Queue, QueueOptions};
use chatter_worker::jobs::{Job, JobBuilder};
use chatter_worker::sqlite::SqliteBackend;
use common::{WorkerProcess, wait_until};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// A fresh folder with the test's database file path in it.
fn db(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-sqlite-{test}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("chatter-worker.db")
}

async fn queue(db: &std::path::Path, name: &str) -> Arc<dyn Queue> {
    let b = SqliteBackend::open(db).await.unwrap();
    b.queue(name, QueueOptions::default())
}

fn sleeps(n: usize, ms: u64) -> Vec<Job> {
    (0..n)
        .map(|_| {
            JobBuilder::new("sleep", "maintenance")
                .arguments(json!({ "ms": ms }))
                .build()
        })
        .collect()
}

async fn statuses(q: &dyn Queue, jobs: &[Job]) -> Vec<String> {
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    q.show_many(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.map_or("missing".into(), |r| r.status.to_string()))
        .collect()
}

fn count(s: &[String], status: &str) -> usize {
    s.iter().filter(|x| *x == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_jobs_are_rescued_after_the_lease_and_run_again_at_most_once_each() {
    let db = db("kill");
    let q = queue(&db, "maintenance").await;
    let jobs = sleeps(100, 300);
    q.enqueue_batch(&jobs).await.unwrap();
    let args = ["--concurrency", "8", "--lease", "2s"];
    let first = WorkerProcess::spawn_sqlite(&db, "maintenance", &args);
    wait_until(LIMIT, "the first worker to be busy", || async {
        let s = q.stats().await.unwrap();
        s.running == 8 && s.finished > 0
    })
    .await;
    first.signal("KILL");
    let _ = first.wait(LIMIT).await;
    let in_flight = q.stats().await.unwrap().running;
    assert!(in_flight > 0);

    let second = WorkerProcess::spawn_sqlite(&db, "maintenance", &args);
    wait_until(LIMIT, "every job to complete", || async {
        count(&statuses(q.as_ref(), &jobs).await, "completed") == jobs.len()
    })
    .await;
    let mut twice = 0;
    for j in &jobs {
        if q.show(&j.id).await.unwrap().unwrap().fence > 1 {
            twice += 1;
        }
    }
    assert_eq!(
        twice as u64, in_flight,
        "double executions = the jobs in flight at the kill, no more"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_and_loses_nothing() {
    let db = db("term");
    let q = queue(&db, "maintenance").await;
    let jobs = sleeps(12, 700);
    q.enqueue_batch(&jobs).await.unwrap();
    let w = WorkerProcess::spawn_sqlite(
        &db,
        "maintenance",
        &["--concurrency", "4", "--shutdown-deadline", "10s"],
    );
    wait_until(LIMIT, "four running", || async {
        q.stats().await.unwrap().running == 4
    })
    .await;
    let s = statuses(q.as_ref(), &jobs).await;
    let running: Vec<String> = jobs
        .iter()
        .zip(&s)
        .filter(|(_, st)| *st == "running")
        .map(|(j, _)| j.id.clone())
        .collect();
    w.signal("TERM");
    assert!(
        w.wait(Duration::from_secs(15)).await.success(),
        "clean exit"
    );
    for id in &running {
        assert_eq!(
            q.show(id).await.unwrap().unwrap().status,
            "completed",
            "in-flight job {id} finished"
        );
    }
    let s = statuses(q.as_ref(), &jobs).await;
    assert_eq!(count(&s, "running"), 0);
    assert_eq!(
        count(&s, "completed") + count(&s, "pending"),
        jobs.len(),
        "nothing lost: {s:?}"
    );
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.ready as usize, count(&s, "pending"));
    assert_eq!(stats.workers, 0, "the worker deregistered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_deadline_hands_running_jobs_back() {
    let db = db("deadline");
    let q = queue(&db, "maintenance").await;
    let jobs = sleeps(3, 30_000);
    q.enqueue_batch(&jobs).await.unwrap();
    let w = WorkerProcess::spawn_sqlite(
        &db,
        "maintenance",
        &["--concurrency", "4", "--shutdown-deadline", "1s"],
    );
    wait_until(LIMIT, "three running", || async {
        q.stats().await.unwrap().running == 3
    })
    .await;
    w.signal("TERM");
    assert!(
        w.wait(Duration::from_secs(15)).await.success(),
        "clean exit"
    );
    for j in &jobs {
        let r = q.show(&j.id).await.unwrap().unwrap();
        assert_eq!(
            (r.status.as_str(), r.attempt),
            ("pending", 0),
            "handed back without counting an attempt"
        );
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.running), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_fire_every_second_exactly_once_through_a_kill_and_restart() {
    let db = db("cron");
    let file = db.with_file_name("schedules.toml");
    std::fs::write(
        &file,
        "[[schedule]]\nname = \"every\"\ncron = \"* * * * * *\"\nkind = \"ping\"\ncatch_up = \"skip\"\n",
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    // Create the file before three processes race to (each migrates; the first creates it).
    let q = queue(&db, "maintenance").await;
    // The pools work chunking only: the fired jobs stay in the maintenance queue.
    let spawn = || WorkerProcess::spawn_sqlite(&db, "chunking", &["--schedules", &path]);
    let started = Instant::now();
    let a = spawn();
    let mut b = spawn();
    let c = spawn();
    tokio::time::sleep(Duration::from_secs(20)).await;
    b.signal("KILL");
    b.wait(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    b = spawn();
    let left = Duration::from_secs(60).saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;
    let metrics = a.get("/metrics").await;
    for w in [a, b, c] {
        w.signal("TERM");
        assert!(w.wait(Duration::from_secs(20)).await.success());
    }
    // Every job is a tick: its name is `every@<tick, RFC 3339>`.
    let ids = q.scan_ids(100_000).await.unwrap();
    let records = q.show_many(&ids).await.unwrap();
    let mut ticks: Vec<i64> = records
        .iter()
        .flatten()
        .filter_map(|r| {
            let name = r.name.as_deref()?.strip_prefix("every@")?;
            Some(
                chrono::DateTime::parse_from_rfc3339(name)
                    .ok()?
                    .timestamp_millis(),
            )
        })
        .collect();
    assert_eq!(ticks.len(), ids.len(), "every job is a tick");
    ticks.sort();
    println!(
        "{} ticks from {} to {}",
        ticks.len(),
        ticks[0],
        ticks[ticks.len() - 1]
    );
    assert!(ticks.len() >= 55, "{} ticks in a minute", ticks.len());
    for w in ticks.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1000,
            "a gap or a duplicate between {} and {}",
            w[0],
            w[1]
        );
    }
    let ready = q.stats().await.unwrap().ready;
    assert_eq!(ready as usize, ticks.len(), "one job per tick");
    assert!(
        metrics.contains("chatter_cron_fires_total{schedule=\"every\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_dead_lettered_and_the_jobs_around_them_run() {
    let db = db("malformed");
    let q = queue(&db, "maintenance").await;
    let good = sleeps(4, 10);
    let not_json = sleeps(1, 10).remove(0);
    let future = sleeps(1, 10).remove(0);
    q.enqueue_batch(&good[..2]).await.unwrap();
    q.enqueue_batch(&[not_json.clone(), future.clone()])
        .await
        .unwrap();
    q.enqueue_batch(&good[2..]).await.unwrap();
    // Break records by hand, as the sqlite3 CLI would: a payload that is not JSON, one of a
    // format version this worker does not know, and a row that is no envelope at all.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE cw_jobs SET payload = '{not json' WHERE id = ?")
        .bind(&not_json.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE cw_jobs SET payload = ? WHERE id = ?")
        .bind(future.encode().replacen("\"v\":1", "\"v\":99", 1))
        .bind(&future.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO cw_jobs (queue, id, status, priority, seq, enqueued_ms, created_ms, payload) \
         VALUES ('maintenance', 'by-hand', 'pending', 2, 1000000, 0, 0, \
         '{\"function_name\":\"sleep\",\"raw\":\"row inserted by hand\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let w = WorkerProcess::spawn_sqlite(&db, "maintenance", &["--concurrency", "2"]);
    wait_until(LIMIT, "the good jobs to complete", || async {
        count(&statuses(q.as_ref(), &good).await, "completed") == good.len()
    })
    .await;
    wait_until(LIMIT, "three dead letters", || async {
        q.stats().await.unwrap().dead == 3
    })
    .await;
    let dead = q.dead_list(0, 10).await.unwrap();
    let error_of = |id: &str| {
        dead.iter()
            .find(|r| r.id == id)
            .and_then(|r| r.error_message.clone())
            .unwrap_or_default()
    };
    assert!(
        error_of(&not_json.id).contains("payload is not JSON"),
        "{dead:#?}"
    );
    assert!(
        error_of(&future.id).contains("format version 99"),
        "{dead:#?}"
    );
    let by_hand = dead.iter().find(|r| r.id == "by-hand").expect("kept");
    assert!(
        by_hand
            .raw_payload
            .as_deref()
            .unwrap_or_default()
            .contains("row inserted by hand"),
        "the bad record is kept, not lost: {by_hand:#?}"
    );
    // The worker goes on.
    let after = sleeps(1, 10);
    q.enqueue_batch(&after).await.unwrap();
    wait_until(LIMIT, "a job after the bad ones", || async {
        count(&statuses(q.as_ref(), &after).await, "completed") == 1
    })
    .await;
    w.signal("TERM");
    assert!(w.wait(Duration::from_secs(20)).await.success());
}
