//! The embedded queue on a real SQLite file, as two processes would share it: two
//! `SqliteBackend`s (two connection pools) on one file. Claims are exclusive and fenced, stale
//! finishes are refused, idempotency holds across pools, a row written by hand with a garbage
//! payload is dead-lettered by a pool while the jobs around it complete, pause, retention, stats.
mod common;

use chatter_worker::backend::{Finish, FinishEntry, Inspect, Producer, QueueOptions};
use chatter_worker::jobs::{JobBuilder, Priority, Registry};
use chatter_worker::sqlite::SqliteBackend;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const Q: &str = "emb";
const LIMIT: Duration = Duration::from_secs(30);

/// A fresh file in the temp dir for one test.
fn fresh_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("cw-sqlite-{name}-{}.db", ulid::Ulid::new()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// Two backends (two pools, like two processes) on one new file.
async fn two(name: &str) -> (SqliteBackend, SqliteBackend) {
    let path = fresh_file(name);
    let a = SqliteBackend::open(&path).await.unwrap();
    let b = SqliteBackend::open(&path).await.unwrap();
    (a, b)
}

fn done(id: &str, fence: u64) -> FinishEntry {
    FinishEntry {
        id: id.to_string(),
        fence,
        finish: Finish::Completed { result: None },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_claim_every_job_exactly_once() {
    let (a, b) = two("claims").await;
    let qa = Arc::new(a.sqlite_queue(Q, QueueOptions::default()));
    let qb = Arc::new(b.sqlite_queue(Q, QueueOptions::default()));
    let jobs: Vec<_> = (0..2000)
        .map(|n| JobBuilder::new("k", Q).arguments(json!({ "n": n })).build())
        .collect();
    let made = qa.enqueue_batch(&jobs).await.unwrap();
    assert!(made.iter().all(|e| e.created));
    let mut tasks = Vec::new();
    for (i, q) in [qa.clone(), qb.clone(), qa.clone(), qb.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let mut claims = Vec::new();
            loop {
                let r = q
                    .fetch(&format!("w{i}"), 37, Duration::from_secs(60))
                    .await
                    .unwrap();
                if r.jobs.is_empty() {
                    return claims;
                }
                let entries: Vec<_> = r.jobs.iter().map(|c| done(&c.id, c.fence)).collect();
                let rep = q.finish(&entries).await.unwrap();
                assert_eq!(rep.stale, 0);
                claims.extend(r.jobs.into_iter().map(|c| (c.id, c.fence)));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 2000, "every job claimed once");
    let ids: HashSet<_> = all.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 2000, "no job claimed twice");
    let claims: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(claims.len(), 2000, "every (id, fence) claim distinct");
    assert!(all.iter().all(|(_, f)| *f == 1), "one claim each: fence 1");
    let s = qb.stats().await.unwrap();
    assert_eq!((s.finished, s.ready, s.running), (2000, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_finish_after_rescue_is_refused() {
    let (a, b) = two("stale").await;
    let qa = a.sqlite_queue(Q, QueueOptions::default());
    let qb = b.sqlite_queue(Q, QueueOptions::default());
    let job = JobBuilder::new("k", Q).max_retries(3).build();
    qa.enqueue(&job).await.unwrap();
    let first = qa
        .fetch("silent", 1, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(first.jobs[0].fence, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = qb.rescue(100).await.unwrap();
    assert_eq!(r.requeued, 1);
    let second = qb.fetch("alive", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(second.jobs[0].id, job.id);
    let fence = second.jobs[0].fence;
    assert!(
        fence > 1,
        "the rescue and the new claim move the fence: {fence}"
    );
    // The silent holder is told it lost the job, and its finish changes nothing.
    let hb = qa
        .heartbeat("silent", &[(job.id.clone(), 1)], LIMIT, LIMIT)
        .await
        .unwrap();
    assert_eq!(hb.lost, vec![(job.id.clone(), 1)]);
    let rep = qa.finish(&[done(&job.id, 1)]).await.unwrap();
    assert_eq!((rep.applied, rep.stale), (0, 1));
    assert_eq!(rep.stale_ids, vec![job.id.clone()]);
    assert_eq!(
        qa.show(&job.id).await.unwrap().unwrap().status.as_str(),
        "running"
    );
    let rec = qa.show(&job.id).await.unwrap().unwrap();
    assert_eq!(
        rec.history.as_array().unwrap().len(),
        1,
        "the loss is in the history"
    );
    let rep = qb.finish(&[done(&job.id, fence)]).await.unwrap();
    assert_eq!((rep.applied, rep.stale), (1, 0));
    assert_eq!(
        qa.field(&job.id, "status").await.unwrap().as_deref(),
        Some("completed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_holds_across_pools() {
    let (a, b) = two("idem").await;
    let qa = a.sqlite_queue(Q, QueueOptions::default());
    let qb = b.sqlite_queue(Q, QueueOptions::default());
    let first = JobBuilder::new("k", Q).idempotency_key("doc-7").build();
    let second = JobBuilder::new("k", Q).idempotency_key("doc-7").build();
    assert!(qa.enqueue(&first).await.unwrap().created);
    let again = qb.enqueue(&second).await.unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (first.id.as_str(), false)
    );
    let same = qb.enqueue(&first).await.unwrap();
    assert_eq!((same.id.as_str(), same.created), (first.id.as_str(), false));
    // All or nothing across queues, with the same rules.
    let other = JobBuilder::new("k", "other").build();
    let r = b
        .clone()
        .enqueue_atomic_for_test(&[second.clone(), other.clone()])
        .await;
    assert_eq!(r[0].id, first.id);
    assert!(!r[0].created && r[1].created);
    assert_eq!(qa.stats().await.unwrap().ready, 1);
    assert!(
        a.sqlite_queue("other", QueueOptions::default())
            .exists(&other.id)
            .await
            .unwrap()
    );
}

/// `Backend::enqueue_atomic` through the trait object.
trait AtomicForTest {
    async fn enqueue_atomic_for_test(
        self,
        jobs: &[chatter_worker::jobs::Job],
    ) -> Vec<chatter_worker::backend::Enqueued>;
}

impl AtomicForTest for SqliteBackend {
    async fn enqueue_atomic_for_test(
        self,
        jobs: &[chatter_worker::jobs::Job],
    ) -> Vec<chatter_worker::backend::Enqueued> {
        use chatter_worker::backend::Backend;
        self.enqueue_atomic(&QueueOptions::default(), jobs)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_payload_is_dead_lettered_and_its_neighbours_complete() {
    let (a, b) = two("garbage").await;
    let qa = Arc::new(a.sqlite_queue(Q, QueueOptions::default()));
    let before = JobBuilder::new("ok", Q).build();
    let after = JobBuilder::new("ok", Q).build();
    qa.enqueue(&before).await.unwrap();
    // Written by hand between the two, as the sqlite3 CLI would.
    let now = chatter_worker::backend::now_ms() as i64;
    sqlx::query("UPDATE cw_queues SET seq = seq + 1 WHERE name = ?1")
        .bind(Q)
        .execute(a.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO cw_jobs (queue, id, status, priority, seq, enqueued_ms, created_ms, \
         payload, max_attempts) VALUES (?1, 'garbage', 'pending', 2, \
         (SELECT seq FROM cw_queues WHERE name = ?1), ?2, ?2, 'this is {not json', 1)",
    )
    .bind(Q)
    .bind(now)
    .execute(a.pool())
    .await
    .unwrap();
    qa.enqueue(&after).await.unwrap();
    let rec = qa.show("garbage").await.unwrap().unwrap();
    assert!(rec.job.is_none() && rec.payload_error.is_some());
    assert_eq!(rec.raw_payload.as_deref(), Some("this is {not json"));

    let mut reg = Registry::default();
    reg.register("ok", Q, |_, _| async { Ok(Value::Null) });
    let backend: Arc<dyn chatter_worker::backend::Backend> = Arc::new(b.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pool = tokio::spawn(chatter_worker::pool::run(
        backend.clone(),
        backend.queue(Q, QueueOptions::default()),
        reg,
        common::pool_config(1),
        shutdown.clone(),
    ));
    common::wait_until(LIMIT, "two completed, one dead", || async {
        let s = qa.stats().await.unwrap();
        s.finished == 2 && s.dead == 1
    })
    .await;
    shutdown.cancel();
    pool.await.unwrap().unwrap();
    let dead = qa.dead_list(0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "garbage");
    let err = dead[0].error_message.clone().unwrap();
    assert!(err.contains("cannot decode payload"), "{err}");
    for j in [&before, &after] {
        assert_eq!(
            qa.show(&j.id).await.unwrap().unwrap().status.as_str(),
            "completed"
        );
    }
    // The sweep finds nothing left to do, and counts what it read.
    let r = qa.sweep(Duration::from_secs(5)).await.unwrap();
    assert_eq!((r.checked, r.dead_lettered, r.set_aside), (3, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_dead_letters_a_garbage_payload_it_finds() {
    let (a, _b) = two("sweep").await;
    let q = a.sqlite_queue(Q, QueueOptions::default());
    q.enqueue(&JobBuilder::new("ok", Q).build()).await.unwrap();
    sqlx::query(
        "INSERT INTO cw_jobs (queue, id, status, priority, seq, enqueued_ms, created_ms, \
         payload, max_attempts) VALUES (?1, 'junk', 'retrying', 1, 0, 1, 1, '[1,2]', 1)",
    )
    .bind(Q)
    .execute(a.pool())
    .await
    .unwrap();
    let r = q.sweep(Duration::from_secs(5)).await.unwrap();
    assert_eq!((r.checked, r.dead_lettered), (2, 1));
    let rec = q.show("junk").await.unwrap().unwrap();
    assert_eq!(rec.status.as_str(), "failed");
    assert!(rec.error_message.unwrap().contains("malformed job record"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_and_resume_releases() {
    let (a, b) = two("pause").await;
    let qa = a.sqlite_queue(Q, QueueOptions::default());
    let qb = b.sqlite_queue(Q, QueueOptions::default());
    qa.pause().await.unwrap();
    let later = JobBuilder::new("k", Q)
        .delay(Duration::from_secs(60))
        .build();
    qa.enqueue_batch(&[JobBuilder::new("k", Q).build(), later.clone()])
        .await
        .unwrap();
    let r = qb.fetch("w", 10, LIMIT).await.unwrap();
    assert!(r.paused && r.jobs.is_empty());
    assert_eq!(r.next_due_ms, Some(later.scheduled_at.unwrap().millis()));
    assert!(qb.is_paused().await.unwrap() && qb.stats().await.unwrap().paused);
    qb.resume().await.unwrap();
    let r = qa.fetch("w", 10, LIMIT).await.unwrap();
    assert!(!r.paused);
    assert_eq!(r.jobs.len(), 1, "the delayed job waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_finished_and_dead_beyond_the_caps() {
    let (a, _b) = two("trim").await;
    let options = QueueOptions {
        max_finished: 2,
        max_dead: 1,
        ..QueueOptions::default()
    };
    let q = a.sqlite_queue(Q, options);
    let jobs: Vec<_> = (0..8).map(|_| JobBuilder::new("k", Q).build()).collect();
    q.enqueue_batch(&jobs).await.unwrap();
    let r = q.fetch("w", 8, LIMIT).await.unwrap();
    let entries: Vec<_> = r
        .jobs
        .iter()
        .enumerate()
        .map(|(i, c)| FinishEntry {
            id: c.id.clone(),
            fence: c.fence,
            finish: if i < 5 {
                Finish::Completed {
                    result: Some("\"ok\"".into()),
                }
            } else {
                Finish::Dead {
                    error: "no".into(),
                    history: chatter_worker::backend::history_entry(1, "no", "w", 1),
                }
            },
        })
        .collect();
    assert_eq!(q.finish(&entries).await.unwrap().applied, 8);
    let t = q.trim(1000).await.unwrap();
    assert_eq!((t.finished_removed, t.dead_removed), (3, 2));
    let s = q.stats().await.unwrap();
    assert_eq!((s.finished, s.dead), (2, 1));
    // The newest stay.
    assert!(q.exists(&r.jobs[4].id).await.unwrap());
    assert!(!q.exists(&r.jobs[0].id).await.unwrap());
    let t = q.cleanup(true).await.unwrap();
    assert_eq!((t.finished_removed, t.dead_removed), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_every_state() {
    let (a, b) = two("stats").await;
    let q = a.sqlite_queue(Q, QueueOptions::default());
    let qb = b.sqlite_queue(Q, QueueOptions::default());
    let mut jobs = Vec::new();
    for (i, p) in Priority::ALL.iter().enumerate() {
        for _ in 0..=i {
            jobs.push(JobBuilder::new("k", Q).priority(*p).build());
        }
    }
    jobs.push(
        JobBuilder::new("k", Q)
            .delay(Duration::from_secs(60))
            .build(),
    );
    q.enqueue_batch(&jobs).await.unwrap();
    let claimed = qb.fetch("w1", 2, LIMIT).await.unwrap();
    // Highest priority first: the critical job, then a high one.
    assert_eq!(claimed.jobs[0].id, jobs[0].id);
    assert_eq!(claimed.jobs[1].id, jobs[1].id);
    qb.heartbeat("w1", &[], LIMIT, LIMIT).await.unwrap();
    qb.finish(&[FinishEntry {
        id: claimed.jobs[1].id.clone(),
        fence: claimed.jobs[1].fence,
        finish: Finish::Retry {
            error: "later".into(),
            history: chatter_worker::backend::history_entry(1, "later", "w1", 1),
            run_at_ms: chatter_worker::backend::now_ms() + 60_000,
        },
    }])
    .await
    .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!(s.ready_by_priority, [0, 1, 3, 4]);
    assert_eq!(
        (
            s.ready,
            s.scheduled,
            s.retrying,
            s.running,
            s.dead,
            s.finished
        ),
        (8, 1, 1, 1, 0, 0)
    );
    assert_eq!((s.workers, s.paused), (1, false));
    assert!(s.oldest_ready_age_ms < 60_000);
    assert_eq!(q.workers().await.unwrap()[0].0, "w1");
    qb.deregister_worker("w1").await.unwrap();
    assert_eq!(q.stats().await.unwrap().workers, 0);
    let ids = q.scan_ids(100).await.unwrap();
    assert_eq!(ids.len(), 11);
    assert_eq!(ids[0], jobs[0].id, "running first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_reaches_the_other_pool() {
    use chatter_worker::backend::{Backend, CancelResult};
    use futures::StreamExt;
    let (a, b) = two("cancel").await;
    let qa = a.sqlite_queue(Q, QueueOptions::default());
    let qb = b.sqlite_queue(Q, QueueOptions::default());
    let job = JobBuilder::new("k", Q).build();
    qa.enqueue(&job).await.unwrap();
    let mut requests = b.cancel_requests(Q).await.unwrap();
    let c = qb.fetch("w", 1, LIMIT).await.unwrap().jobs.remove(0);
    assert_eq!(qa.cancel(&job.id).await.unwrap(), CancelResult::Cancelling);
    let got = tokio::time::timeout(LIMIT, requests.next()).await.unwrap();
    assert_eq!(got.as_deref(), Some(job.id.as_str()));
    let hb = qb
        .heartbeat("w", &[(c.id.clone(), c.fence)], LIMIT, LIMIT)
        .await
        .unwrap();
    assert_eq!(hb.cancel, vec![job.id.clone()]);
    // A retry of a job whose cancel was requested ends it cancelled.
    let rep = qb
        .finish(&[FinishEntry {
            id: c.id.clone(),
            fence: c.fence,
            finish: Finish::Retry {
                error: "x".into(),
                history: chatter_worker::backend::history_entry(1, "x", "w", 1),
                run_at_ms: 0,
            },
        }])
        .await
        .unwrap();
    assert_eq!(rep.applied, 1);
    assert_eq!(
        qa.show(&job.id).await.unwrap().unwrap().status.as_str(),
        "cancelled"
    );
    assert_eq!(
        qa.cancel(&job.id).await.unwrap(),
        CancelResult::AlreadyFinished("cancelled".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_batch_with_a_bad_job_writes_nothing() {
    use chatter_worker::backend::Backend;
    let (a, _b) = two("atomic").await;
    let good = JobBuilder::new("k", Q).build();
    let mut bad = JobBuilder::new("k", "elsewhere").build();
    bad.id = "not-a-ulid".into();
    let r = a
        .enqueue_atomic(&QueueOptions::default(), &[good.clone(), bad])
        .await;
    assert!(r.is_err());
    let q = a.sqlite_queue(Q, QueueOptions::default());
    assert!(!q.exists(&good.id).await.unwrap());
    assert!(a.known_queues().await.unwrap().is_empty());
    // Replaying or purging an id that is no dead letter changes nothing.
    assert_eq!(q.replay(Some(&good.id), 1).await.unwrap(), 0);
    assert_eq!(q.purge_dead(Some(&good.id), 1).await.unwrap(), 0);
    assert!(a.known_queues().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_index_raw_fields_and_show_order() {
    let (a, _b) = two("index").await;
    let q = a.sqlite_queue(Q, QueueOptions::default());
    let mut jobs = Vec::new();
    for i in 0..5u64 {
        let mut j = JobBuilder::new("k", Q).owner("u1").build();
        j.created_at = chatter_worker::jobs::Timestamp(1_000 + i);
        jobs.push(j);
    }
    let other = JobBuilder::new("k", Q).owner("u2").build();
    q.enqueue_batch(&jobs).await.unwrap();
    q.enqueue(&other).await.unwrap();
    let page = q
        .index_page("u1", (1_001, 1_003), 0, 10, true)
        .await
        .unwrap();
    let want: Vec<_> = (1..=3)
        .rev()
        .map(|i| (jobs[i].id.clone(), 1_000 + i as u64))
        .collect();
    assert_eq!(page, want, "newest first within the range");
    let page = q
        .index_page("u1", (0, u64::MAX), 1, 2, false)
        .await
        .unwrap();
    assert_eq!(page[0].0, jobs[1].id);
    assert_eq!(q.index_count("u1", (0, u64::MAX)).await.unwrap(), 5);
    assert_eq!(q.index_count("u2", (0, u64::MAX)).await.unwrap(), 1);
    let ids = vec![
        jobs[2].id.clone(),
        "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        jobs[0].id.clone(),
    ];
    let shown = q.show_many(&ids).await.unwrap();
    assert_eq!(shown[0].as_ref().unwrap().id, jobs[2].id);
    assert!(shown[1].is_none());
    assert_eq!(shown[2].as_ref().unwrap().owner.as_deref(), Some("u1"));
    let id = &jobs[0].id;
    for (field, want) in [
        ("status", Some("pending")),
        ("priority", Some("normal")),
        ("user", Some("u1")),
        ("fence", Some("0")),
        ("max_attempts", Some("4")),
        ("cancel", None),
        ("history", None),
        ("no such field", None),
    ] {
        assert_eq!(
            q.field(id, field).await.unwrap().as_deref(),
            want,
            "{field}"
        );
    }
    let c = q.fetch("w9", 1, LIMIT).await.unwrap().jobs.remove(0);
    assert_eq!(
        q.field(&c.id, "owner").await.unwrap().as_deref(),
        Some("w9")
    );
    assert_eq!(
        q.field(&c.id, "status").await.unwrap().as_deref(),
        Some("running")
    );
}

/// Enqueue and drain throughput on one file with a real pool (printed, never asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn throughput() {
    let (a, b) = two("throughput").await;
    let n = 10_000;
    let q = a.sqlite_queue(Q, QueueOptions::default());
    let jobs: Vec<_> = (0..n).map(|_| JobBuilder::new("ok", Q).build()).collect();
    let start = std::time::Instant::now();
    q.enqueue_batch(&jobs).await.unwrap();
    let enq = start.elapsed();
    let mut reg = Registry::default();
    reg.register("ok", Q, |_, _| async { Ok(Value::Null) });
    let backend: Arc<dyn chatter_worker::backend::Backend> = Arc::new(b.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let drain = std::time::Instant::now();
    let pool = tokio::spawn(chatter_worker::pool::run(
        backend.clone(),
        backend.queue(Q, QueueOptions::default()),
        reg,
        chatter_worker::pool::PoolConfig {
            concurrency: 64,
            fetch_batch: 100,
            ..common::pool_config(64)
        },
        shutdown.clone(),
    ));
    common::wait_until(Duration::from_secs(600), "the drain", || async {
        q.stats().await.unwrap().finished == n as u64
    })
    .await;
    let drained = drain.elapsed();
    shutdown.cancel();
    pool.await.unwrap().unwrap();
    eprintln!(
        "enqueue {n} jobs: {:?} ({:.0} jobs/s); drain: {:?} ({:.0} jobs/s)",
        enq,
        n as f64 / enq.as_secs_f64(),
        drained,
        n as f64 / drained.as_secs_f64()
    );
}
