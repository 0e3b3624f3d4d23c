//! Backend conformance suite: the behaviours every queue backend must show. Each test seeds a
//! queue under its own prefix, acts only through the backend traits (`Arc<dyn Backend>`,
//! `Arc<dyn Queue>`) and a real pool, and compares the resulting state. The including test crate
//! chooses the backend (`crate::backends_for`: the one the test acts through, and the one its
//! pools run on): `tests/conformance.rs` runs it on Redis,
//! `tests/conformance_faults.rs` on Redis behind a fault-injecting decorator,
//! `tests/conformance_sqlite.rs` on the embedded SQLite backend. The two probes that read the
//! backend in its own terms are the including crate's: `crate::retry_run_at(h, queue, id)` (a
//! retrying job's run-at, ms) and `crate::progress_events(h, queue)` (the live `job.progress`
//! event bodies, subscribed before the job runs).

use crate::common::*;
use chatter_worker::backend::{Backend, CancelResult, Queue, QueueOptions};
use chatter_worker::jobs::{Job, JobBuilder, JobError, Priority, Registry};
use chatter_worker::pool::PoolConfig;
use chatter_worker::retention::{Retention, RetentionConfig};
use chatter_worker::retry::{RetryPolicy, delay};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

const Q: &str = "conf";
const LIMIT: Duration = Duration::from_secs(20);

struct Kit {
    /// The Redis harness: the prefix (which also names a SQLite crate's file) and connection.
    h: Harness,
    /// What the pools run on (the backend under test, or it behind fault injection).
    backend: Arc<dyn Backend>,
    /// The test's own handle on the queue: how it seeds, acts as an operator, and reads state.
    q: Arc<dyn Queue>,
    reg: Registry,
}

async fn kit() -> Kit {
    kit_with(QueueOptions::default()).await
}

async fn kit_with(options: QueueOptions) -> Kit {
    let h = setup().await;
    let (tests, backend) = crate::backends_for(&h);
    let q = tests.queue(Q, options);
    Kit {
        h,
        backend,
        q,
        reg: Registry::default(),
    }
}

impl Kit {
    fn start_pool(&self, registry: Registry, config: PoolConfig) -> PoolHandle {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let join = tokio::spawn(chatter_worker::pool::run(
            self.backend.clone(),
            self.backend.queue(Q, self.q.options().clone()),
            registry,
            config,
            shutdown.clone(),
        ));
        PoolHandle { shutdown, join }
    }

    /// A kind that reports `kwargs.n` (and the attempt) on a channel and completes.
    fn recorder(&mut self) -> mpsc::UnboundedReceiver<(u64, u32)> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.reg.register("record", Q, move |job, ctx| {
            let _ = tx.send((
                job.kwargs.get("n").and_then(Value::as_u64).unwrap_or(0),
                ctx.attempt,
            ));
            async { Ok(Value::Null) }
        });
        rx
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_then_fifo_order() {
    let mut k = kit().await;
    let mut rx = k.recorder();
    let jobs: Vec<_> = (0..40u64)
        .map(|n| {
            JobBuilder::new("record", Q)
                .arguments(json!({ "n": n }))
                .priority(Priority::ALL[(n % 4) as usize])
                .build()
        })
        .collect();
    k.q.enqueue_batch(&jobs).await.unwrap();
    let pool = k.start_pool(k.reg.clone(), pool_config(1));
    let mut seen = Vec::new();
    while seen.len() < 40 {
        seen.push(rx.recv().await.unwrap().0);
    }
    let mut expected: Vec<u64> = (0..40).collect();
    expected.sort_by_key(|n| (n % 4, *n));
    assert_eq!(
        seen, expected,
        "critical before high before normal before low, FIFO within a level"
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_job_is_not_started_early() {
    let mut k = kit().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    k.reg.register("stamp", Q, move |job, _| {
        let _ = tx.send((
            job.id.clone(),
            chatter_worker::jobs::Timestamp::now().millis(),
        ));
        async { Ok(Value::Null) }
    });
    let pool = k.start_pool(k.reg.clone(), pool_config(2));
    let later = JobBuilder::new("stamp", Q)
        .delay(Duration::from_millis(300))
        .build();
    let due = later.scheduled_at.unwrap().millis();
    let now = JobBuilder::new("stamp", Q).build();
    k.q.enqueue(&later).await.unwrap();
    k.q.enqueue(&now).await.unwrap();
    let (first, _) = rx.recv().await.unwrap();
    assert_eq!(
        first, now.id,
        "the immediate job runs while the delayed one waits"
    );
    let (second, started) = rx.recv().await.unwrap();
    assert_eq!(second, later.id);
    assert!(
        started >= due,
        "started at {started}, due at {due}: {} ms early",
        due - started
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_policy_then_dead_letter_with_history() {
    let mut k = kit().await;
    k.reg.register("fail", Q, |job, ctx| async move {
        Err::<Value, _>(JobError::Retry(format!(
            "boom {} on attempt {}",
            job.name, ctx.attempt
        )))
    });
    let policy = RetryPolicy {
        base_secs: 0.2,
        factor: 2.0,
        cap_secs: 10.0,
        jitter: 0.5,
    };
    let config = PoolConfig {
        retry: HashMap::from([("fail".to_string(), policy.clone())]),
        rng_seed: Some(42),
        ..pool_config(1)
    };
    let pool = k.start_pool(k.reg.clone(), config);
    let job = JobBuilder::new("fail", Q).max_retries(2).build();
    k.q.enqueue(&job).await.unwrap();

    // The same seeded sequence the pool draws from.
    let mut rng = StdRng::seed_from_u64(42);
    let expected: Vec<u64> = (1..=2)
        .map(|n| delay(n, &policy, &mut rng).as_millis() as u64)
        .collect();
    for (i, want) in expected.iter().enumerate() {
        // Poll until failure i+1 is recorded and its retry is scheduled (state, not a fixed sleep).
        let started = std::time::Instant::now();
        let score: u64 = loop {
            let failures =
                k.q.show(&job.id)
                    .await
                    .unwrap()
                    .map(|r| r.retry_count)
                    .unwrap_or(0);
            let sc = crate::retry_run_at(&k.h, Q, &job.id).await;
            if let (true, Some(sc)) = (failures as usize == i + 1, sc) {
                break sc;
            }
            assert!(
                started.elapsed() < LIMIT,
                "retry {} was never scheduled",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let rec = k.q.show(&job.id).await.unwrap().unwrap();
        assert_eq!(rec.status, "retrying");
        let failed_at = rec.history[i]["at"].as_u64().unwrap();
        assert_eq!(
            score - failed_at,
            *want,
            "retry {} waits the policy's seeded delay",
            i + 1
        );
    }
    wait_until(LIMIT, "the job to be dead", || async {
        k.q.stats().await.unwrap().dead == 1
    })
    .await;
    let rec = k.q.show(&job.id).await.unwrap().unwrap();
    assert_eq!(rec.status, "failed");
    let err = rec.error_message.unwrap();
    assert!(
        err.contains("on attempt 3") && err.contains("gave up after 3 attempts"),
        "{err}"
    );
    let attempts: Vec<u64> = rec
        .history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(k.q.dead_list(0, 10).await.unwrap()[0].id, job.id);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_can_be_replayed_and_deleted() {
    let mut k = kit().await;
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    k.reg.register("flaky", Q, move |_, _| {
        let broken = b.load(Ordering::SeqCst);
        async move {
            if broken {
                Err(JobError::Fatal("dependency down".into()))
            } else {
                Ok(json!("fine"))
            }
        }
    });
    let pool = k.start_pool(k.reg.clone(), pool_config(2));
    let one = JobBuilder::new("flaky", Q).build();
    let two = JobBuilder::new("flaky", Q).build();
    k.q.enqueue_batch(&[one.clone(), two.clone()])
        .await
        .unwrap();
    wait_until(LIMIT, "both to be dead", || async {
        k.q.stats().await.unwrap().dead == 2
    })
    .await;
    assert_eq!(
        k.q.show(&one.id)
            .await
            .unwrap()
            .unwrap()
            .error_message
            .as_deref(),
        Some("dependency down")
    );

    broken.store(false, Ordering::SeqCst);
    assert_eq!(k.q.replay(Some(&one.id), 1).await.unwrap(), 1);
    assert_eq!(
        k.q.replay(Some(&one.id), 1).await.unwrap(),
        0,
        "a job is replayed once"
    );
    wait_until(LIMIT, "the replay to complete", || async {
        k.q.show(&one.id).await.unwrap().unwrap().status == "completed"
    })
    .await;
    let rec = k.q.show(&one.id).await.unwrap().unwrap();
    assert_eq!(rec.result, Some(json!("fine")));
    assert_eq!(rec.attempt, 1, "a replay starts a fresh attempt count");

    assert_eq!(k.q.purge_dead(Some(&two.id), 1).await.unwrap(), 1);
    assert!(k.q.show(&two.id).await.unwrap().is_none());
    assert_eq!(k.q.stats().await.unwrap().dead, 0);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_enqueue_returns_the_first_id() {
    let k = kit().await;
    let first = JobBuilder::new("record", Q)
        .idempotency_key("doc-42")
        .build();
    let second = JobBuilder::new("record", Q)
        .idempotency_key("doc-42")
        .build();
    let a = k.q.enqueue(&first).await.unwrap();
    let b = k.q.enqueue(&second).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(b.id, first.id);
    // Resending the same job (a producer retrying after a lost reply) is also a no-op.
    let again = k.q.enqueue(&first).await.unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (first.id.as_str(), false)
    );
    assert_eq!(k.q.stats().await.unwrap().ready, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_pending_job() {
    let mut k = kit().await;
    let mut rx = k.recorder();
    let doomed = JobBuilder::new("record", Q)
        .arguments(json!({"n": 1}))
        .build();
    let delayed = JobBuilder::new("record", Q)
        .arguments(json!({"n": 2}))
        .delay(Duration::from_secs(60))
        .build();
    k.q.enqueue_batch(&[doomed.clone(), delayed.clone()])
        .await
        .unwrap();
    assert_eq!(
        k.q.cancel(&doomed.id).await.unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(
        k.q.cancel(&delayed.id).await.unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(
        k.q.cancel(&doomed.id).await.unwrap(),
        CancelResult::AlreadyFinished("cancelled".into())
    );
    assert_eq!(
        k.q.cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV").await.unwrap(),
        CancelResult::NotFound
    );
    let s = k.q.stats().await.unwrap();
    assert_eq!((s.ready, s.scheduled), (0, 0));
    assert_eq!(
        k.q.show(&doomed.id).await.unwrap().unwrap().status,
        "cancelled"
    );

    let pool = k.start_pool(k.reg.clone(), pool_config(2));
    k.q.enqueue(
        &JobBuilder::new("record", Q)
            .arguments(json!({"n": 3}))
            .build(),
    )
    .await
    .unwrap();
    assert_eq!(
        rx.recv().await.unwrap().0,
        3,
        "the cancelled jobs never run"
    );
    pool.stop().await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_running_job() {
    let mut k = kit().await;
    let (tx, mut started) = mpsc::unbounded_channel();
    k.reg.register("block", Q, move |job, ctx| {
        let _ = tx.send(job.id.clone());
        async move {
            ctx.cancel.cancelled().await;
            Err::<Value, _>(JobError::Cancelled)
        }
    });
    let pool = k.start_pool(k.reg.clone(), pool_config(2));
    let job = JobBuilder::new("block", Q).build();
    k.q.enqueue(&job).await.unwrap();
    assert_eq!(started.recv().await.unwrap(), job.id);
    assert_eq!(k.q.cancel(&job.id).await.unwrap(), CancelResult::Cancelling);
    wait_until(LIMIT, "the running job to end cancelled", || async {
        k.q.show(&job.id).await.unwrap().unwrap().status == "cancelled"
    })
    .await;
    assert_eq!(k.q.stats().await.unwrap().running, 0);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_jobs_and_resume_releases_them() {
    let mut k = kit().await;
    let mut rx = k.recorder();
    k.q.pause().await.unwrap();
    let pool = k.start_pool(k.reg.clone(), pool_config(2));
    k.q.enqueue(
        &JobBuilder::new("record", Q)
            .arguments(json!({"n": 7}))
            .build(),
    )
    .await
    .unwrap();
    // Any fetcher, ours included, is refused while paused.
    let probe =
        k.q.fetch("probe", 10, Duration::from_secs(5))
            .await
            .unwrap();
    assert!(probe.paused && probe.jobs.is_empty());
    let s = k.q.stats().await.unwrap();
    assert!(s.paused);
    assert_eq!(s.ready, 1);
    k.q.resume().await.unwrap();
    assert_eq!(rx.recv().await.unwrap().0, 7);
    assert!(!k.q.is_paused().await.unwrap());
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_recorded_and_published() {
    let mut k = kit().await;
    let release = Arc::new(Notify::new());
    let r = release.clone();
    k.reg.register("halfway", Q, move |_, ctx| {
        let r = r.clone();
        async move {
            ctx.progress(50, "half");
            r.notified().await;
            Ok(Value::Null)
        }
    });
    let mut events = crate::progress_events(&k.h, Q).await;
    let pool = k.start_pool(k.reg.clone(), pool_config(1));
    let job = JobBuilder::new("halfway", Q).build();
    k.q.enqueue(&job).await.unwrap();

    use futures::StreamExt;
    let msg = tokio::time::timeout(LIMIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(event["type"], "job.progress");
    assert_eq!(event["job_id"], job.id.as_str());
    assert_eq!(event["progress"], 50);
    let rec = k.q.show(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (
            rec.progress,
            rec.progress_message.as_deref(),
            rec.status.as_str()
        ),
        (50, Some("half"), "running")
    );
    release.notify_one();
    wait_until(LIMIT, "completion", || async {
        k.q.show(&job.id).await.unwrap().unwrap().status == "completed"
    })
    .await;
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_expire_after_retention() {
    // By time: records older than the retention vanish.
    let (k, jobs, pool, retention) = three_finished(QueueOptions {
        finished_retention: Duration::from_millis(50),
        ..QueueOptions::default()
    })
    .await;
    wait_until(LIMIT, "records to expire", || async {
        retention.run_once().await.unwrap();
        k.q.stats().await.unwrap().finished == 0
    })
    .await;
    for j in &jobs {
        assert!(
            k.q.show(&j.id).await.unwrap().is_none(),
            "{} still has a record",
            j.id
        );
    }
    pool.stop().await;

    // By count: only `max_finished` records stay.
    let (k, jobs, pool, retention) = three_finished(QueueOptions {
        max_finished: 1,
        ..QueueOptions::default()
    })
    .await;
    let r = retention.run_once().await.unwrap();
    assert_eq!(r.finished_removed, 2);
    let mut kept = 0;
    for j in &jobs {
        kept += k.q.show(&j.id).await.unwrap().is_some() as usize;
    }
    assert_eq!(kept, 1, "exactly max_finished records stay");
    assert_eq!(k.q.stats().await.unwrap().finished, 1);
    pool.stop().await;
}

/// A queue with these options where three jobs have completed, and a retention pass over it.
async fn three_finished(options: QueueOptions) -> (Kit, Vec<Job>, PoolHandle, Retention) {
    let mut k = kit_with(options).await;
    let mut rx = k.recorder();
    let pool = k.start_pool(k.reg.clone(), pool_config(1));
    let jobs: Vec<_> = (0..3)
        .map(|n| {
            JobBuilder::new("record", Q)
                .arguments(json!({"n": n}))
                .build()
        })
        .collect();
    k.q.enqueue_batch(&jobs).await.unwrap();
    for _ in 0..3 {
        rx.recv().await.unwrap();
    }
    wait_until(LIMIT, "three finished records", || async {
        k.q.stats().await.unwrap().finished == 3
    })
    .await;
    let retention = Retention {
        config: RetentionConfig::default(),
        queues: vec![k.q.clone()],
    };
    (k, jobs, pool, retention)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_is_stopped_and_a_panic_does_not_kill_the_worker() {
    let mut k = kit().await;
    k.reg.register("stuck", Q, |_, _| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Value::Null)
    });
    k.reg
        .register("panics", Q, |_, _| async { panic!("handler bug") });
    let mut rx = k.recorder();
    let pool = k.start_pool(k.reg.clone(), pool_config(2));
    let stuck = JobBuilder::new("stuck", Q)
        .timeout(1)
        .max_retries(0)
        .build();
    let panics = JobBuilder::new("panics", Q).max_retries(0).build();
    k.q.enqueue_batch(&[stuck.clone(), panics.clone()])
        .await
        .unwrap();
    wait_until(LIMIT, "both to be dead", || async {
        k.q.stats().await.unwrap().dead == 2
    })
    .await;
    let err =
        k.q.show(&stuck.id)
            .await
            .unwrap()
            .unwrap()
            .error_message
            .unwrap();
    assert!(err.contains("timed out after 1 s"), "{err}");
    let err =
        k.q.show(&panics.id)
            .await
            .unwrap()
            .unwrap()
            .error_message
            .unwrap();
    assert!(err.contains("handler bug"), "{err}");
    // The same worker goes on.
    k.q.enqueue(
        &JobBuilder::new("record", Q)
            .arguments(json!({"n": 9}))
            .build(),
    )
    .await
    .unwrap();
    assert_eq!(rx.recv().await.unwrap().0, 9);
    pool.stop().await;
}
