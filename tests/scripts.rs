//! One test per Lua script (src/queue/scripts/*.lua), each against the real Redis: seed, call the
//! script through its `RedisQueue` (or `RedisGates`) method, compare the return value and the keys
//! it touched. `rate_take.lua` is tested by embedding.rs (the shared limit) and corruption.rs.
mod common;

use chatter_worker::jobs::{JobBuilder, Priority};
use chatter_worker::queue::{Finish, FinishEntry, QueueOptions, RedisQueue};
use common::*;
use redis::aio::ConnectionManager;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

async fn lrange(c: &mut ConnectionManager, key: String) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(c)
        .await
        .unwrap()
}
async fn zcard(c: &mut ConnectionManager, key: String) -> u64 {
    redis::cmd("ZCARD").arg(key).query_async(c).await.unwrap()
}
async fn zscore(c: &mut ConnectionManager, key: String, id: &str) -> Option<u64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(id)
        .query_async(c)
        .await
        .unwrap()
}

async fn one_claimed(q: &RedisQueue) -> (String, u64) {
    let job = JobBuilder::new("k", q.name()).build();
    q.enqueue(&job).await.unwrap();
    let c = q.fetch("w", 1, LEASE).await.unwrap().jobs.remove(0);
    (c.id, c.fence)
}

#[tokio::test]
async fn enqueue_script() {
    let h = setup().await;
    let q = h.queue("s");
    let mut c = h.conn.clone();
    let now = JobBuilder::new("k", "s").priority(Priority::High).build();
    let later = JobBuilder::new("k", "s")
        .delay(Duration::from_secs(60))
        .build();
    let keyed = JobBuilder::new("k", "s").idempotency_key("x").build();
    let dup = JobBuilder::new("k", "s").idempotency_key("x").build();
    let r = q
        .enqueue_batch(&[now.clone(), later.clone(), keyed.clone(), dup])
        .await
        .unwrap();
    let created: Vec<bool> = r.iter().map(|e| e.created).collect();
    assert_eq!(created, vec![true, true, true, false]);
    assert_eq!(r[3].id, keyed.id);
    assert_eq!(
        lrange(&mut c, q.keys().ready(Priority::High)).await,
        vec![now.id.clone()]
    );
    assert_eq!(
        lrange(&mut c, q.keys().ready(Priority::Normal)).await,
        vec![keyed.id.clone()]
    );
    assert_eq!(
        zscore(&mut c, q.keys().scheduled(), &later.id).await,
        Some(later.scheduled_at.unwrap().millis())
    );
    assert_eq!(
        q.field(&now.id, "status").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(
        q.field(&now.id, "max_attempts").await.unwrap().as_deref(),
        Some("4")
    );
    assert_eq!(
        lrange(&mut c, q.keys().notify()).await.len(),
        1,
        "one wake-up token, however many jobs"
    );
    // A job routed to another queue is refused before anything is sent.
    let wrong = JobBuilder::new("k", "other").build();
    assert!(
        q.enqueue(&wrong)
            .await
            .unwrap_err()
            .to_string()
            .contains("names queue \"other\"")
    );
}

#[tokio::test]
async fn fetch_script() {
    let h = setup().await;
    let q = h.queue("s");
    let mut c = h.conn.clone();
    let low = JobBuilder::new("k", "s").priority(Priority::Low).build();
    let crit = JobBuilder::new("k", "s")
        .priority(Priority::Critical)
        .build();
    let due = JobBuilder::new("k", "s")
        .scheduled_at(chatter_worker::jobs::Timestamp(1))
        .build();
    let later = JobBuilder::new("k", "s")
        .delay(Duration::from_secs(60))
        .build();
    q.enqueue_batch(&[low.clone(), crit.clone(), later.clone()])
        .await
        .unwrap();
    q.enqueue(&due).await.unwrap();
    let r = q.fetch("w", 10, LEASE).await.unwrap();
    let ids: Vec<_> = r.jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(
        ids,
        vec![crit.id.clone(), due.id.clone(), low.id.clone()],
        "priority order; a due job is promoted"
    );
    assert!(r.jobs.iter().all(|j| j.fence == 1 && j.attempt == 1));
    assert_eq!(zcard(&mut c, q.keys().leases()).await, 3);
    assert_eq!(
        q.field(&crit.id, "owner").await.unwrap().as_deref(),
        Some("w")
    );
    let empty = q.fetch("w", 10, LEASE).await.unwrap();
    assert!(empty.jobs.is_empty());
    assert_eq!(
        empty.next_due_ms,
        Some(later.scheduled_at.unwrap().millis()),
        "tells the fetcher how long to sleep"
    );
    // A ready entry that is not a job id is dead-lettered in the same step.
    let _: () = redis::cmd("RPUSH")
        .arg(q.keys().ready(Priority::Normal))
        .arg("garbage")
        .query_async(&mut c)
        .await
        .unwrap();
    let r = q.fetch("w", 10, LEASE).await.unwrap();
    assert_eq!((r.jobs.len(), r.orphans), (0, 1));
    assert_eq!(zcard(&mut c, q.keys().dead()).await, 1);
    q.pause().await.unwrap();
    assert!(q.fetch("w", 10, LEASE).await.unwrap().paused);
}

#[tokio::test]
async fn finish_script() {
    let h = setup().await;
    let q = h.queue_with("s", QueueOptions::default());
    let mut c = h.conn.clone();
    let mut claims = Vec::new();
    for _ in 0..6 {
        claims.push(one_claimed(&q).await);
    }
    let at = |(id, fence): &(String, u64), finish| FinishEntry {
        id: id.clone(),
        fence: *fence,
        finish,
    };
    let r = q
        .finish(&[
            at(
                &claims[0],
                Finish::Completed {
                    result: Some("42".into()),
                },
            ),
            at(
                &claims[1],
                Finish::Retry {
                    error: "e".into(),
                    history: "{\"attempt\":1}".into(),
                    run_at_ms: 7,
                },
            ),
            at(
                &claims[2],
                Finish::Dead {
                    error: "bad".into(),
                    history: "{\"attempt\":1}".into(),
                },
            ),
            at(
                &claims[3],
                Finish::Cancelled {
                    reason: "cancelled".into(),
                },
            ),
            at(&claims[4], Finish::Snooze { run_at_ms: 9 }),
            at(&claims[5], Finish::Requeue),
            at(
                &(claims[0].0.clone(), 99),
                Finish::Completed { result: None },
            ),
        ])
        .await
        .unwrap();
    assert_eq!((r.applied, r.stale), (6, 1));
    let status = |i: usize| q.field(&claims[i].0, "status");
    assert_eq!(status(0).await.unwrap().as_deref(), Some("completed"));
    assert_eq!(
        q.field(&claims[0].0, "result").await.unwrap().as_deref(),
        Some("42")
    );
    assert_eq!(status(1).await.unwrap().as_deref(), Some("retrying"));
    assert_eq!(
        zscore(&mut c, q.keys().retry(), &claims[1].0).await,
        Some(7)
    );
    assert_eq!(
        q.field(&claims[1].0, "history").await.unwrap().as_deref(),
        Some("[{\"attempt\":1}]")
    );
    assert_eq!(status(2).await.unwrap().as_deref(), Some("failed"));
    assert!(
        zscore(&mut c, q.keys().dead(), &claims[2].0)
            .await
            .is_some()
    );
    assert_eq!(status(3).await.unwrap().as_deref(), Some("cancelled"));
    assert_eq!(
        zscore(&mut c, q.keys().scheduled(), &claims[4].0).await,
        Some(9)
    );
    assert_eq!(
        q.field(&claims[4].0, "attempt").await.unwrap().as_deref(),
        Some("0"),
        "a snooze is not an attempt"
    );
    assert_eq!(
        lrange(&mut c, q.keys().ready(Priority::Normal)).await,
        vec![claims[5].0.clone()]
    );
    assert_eq!(
        q.field(&claims[5].0, "attempt").await.unwrap().as_deref(),
        Some("0"),
        "a hand-back is not an attempt"
    );
    assert_eq!(zcard(&mut c, q.keys().leases()).await, 0);
    assert_eq!(
        zcard(&mut c, q.keys().done()).await,
        2,
        "completed and cancelled are indexed for retention"
    );
}

#[tokio::test]
async fn heartbeat_script() {
    let h = setup().await;
    let q = h.queue("s");
    let mut c = h.conn.clone();
    let (id, fence) = one_claimed(&q).await;
    let before = zscore(&mut c, q.keys().leases(), &id).await.unwrap();
    let r = q
        .heartbeat(
            "w",
            &[(id.clone(), fence)],
            Duration::from_secs(300),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(r.lost.is_empty() && r.cancel.is_empty());
    assert!(zscore(&mut c, q.keys().leases(), &id).await.unwrap() > before + 200_000);
    assert_eq!(q.stats().await.unwrap().workers, 1);
    q.cancel(&id).await.unwrap();
    let r = q
        .heartbeat(
            "w",
            &[(id.clone(), fence), (id.clone(), fence + 5)],
            LEASE,
            LEASE,
        )
        .await
        .unwrap();
    assert_eq!(
        r.cancel,
        vec![id.clone()],
        "a requested cancel reaches the holder"
    );
    assert_eq!(
        r.lost,
        vec![(id.clone(), fence + 5)],
        "a fence that is not current is lost"
    );
}

#[tokio::test]
async fn rescue_script() {
    let h = setup().await;
    let q = h.queue("s");
    let mut c = h.conn.clone();
    let again = JobBuilder::new("k", "s").build();
    let spent = JobBuilder::new("k", "s").max_retries(0).build();
    let cancelled = JobBuilder::new("k", "s").build();
    q.enqueue_batch(&[again.clone(), spent.clone(), cancelled.clone()])
        .await
        .unwrap();
    q.fetch("w", 3, Duration::from_millis(1)).await.unwrap();
    q.cancel(&cancelled.id).await.unwrap();
    wait_until(Duration::from_secs(5), "leases to expire", || async {
        let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(q.keys().leases())
            .arg("-inf")
            .arg(chatter_worker::jobs::Timestamp::now().millis())
            .query_async(&mut h.conn.clone())
            .await
            .unwrap();
        expired.len() == 3
    })
    .await;
    let r = q.rescue(100).await.unwrap();
    assert_eq!((r.requeued, r.dead, r.cancelled), (1, 1, 1));
    assert_eq!(
        lrange(&mut c, q.keys().ready(Priority::Normal)).await,
        vec![again.id.clone()]
    );
    assert_eq!(
        q.field(&again.id, "fence").await.unwrap().as_deref(),
        Some("2"),
        "the silent holder is fenced out"
    );
    assert_eq!(
        q.field(&spent.id, "status").await.unwrap().as_deref(),
        Some("failed")
    );
    assert_eq!(
        q.field(&cancelled.id, "status").await.unwrap().as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        q.rescue(100).await.unwrap().requeued,
        0,
        "each lease is rescued once"
    );
}

#[tokio::test]
async fn cancel_replay_purge_scripts() {
    let h = setup().await;
    let q = h.queue("s");
    let (id, fence) = one_claimed(&q).await;
    assert_eq!(
        q.cancel(&id).await.unwrap(),
        chatter_worker::queue::CancelResult::Cancelling
    );
    assert_eq!(q.field(&id, "cancel").await.unwrap().as_deref(), Some("1"));
    q.finish(&[FinishEntry {
        id: id.clone(),
        fence,
        finish: Finish::Dead {
            error: "x".into(),
            history: "{}".into(),
        },
    }])
    .await
    .unwrap();
    assert_eq!(q.replay(None, 10).await.unwrap(), 1);
    assert_eq!(
        q.field(&id, "status").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(
        q.field(&id, "cancel").await.unwrap(),
        None,
        "a replay clears an old cancel request"
    );
    let c = q.fetch("w", 1, LEASE).await.unwrap().jobs.remove(0);
    q.finish(&[FinishEntry {
        id: id.clone(),
        fence: c.fence,
        finish: Finish::Dead {
            error: "x".into(),
            history: "{}".into(),
        },
    }])
    .await
    .unwrap();
    assert_eq!(q.purge_dead(None, 10).await.unwrap(), 1);
    assert!(q.show(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn trim_and_stats_scripts() {
    let h = setup().await;
    let q = h.queue_with(
        "s",
        QueueOptions {
            max_finished: 1,
            max_dead: 1,
            ..QueueOptions::default()
        },
    );
    let mut entries = Vec::new();
    for i in 0..4 {
        let (id, fence) = one_claimed(&q).await;
        let finish = if i < 2 {
            Finish::Completed { result: None }
        } else {
            Finish::Dead {
                error: "x".into(),
                history: "{}".into(),
            }
        };
        entries.push(FinishEntry { id, fence, finish });
    }
    q.finish(&entries).await.unwrap();
    q.enqueue(&JobBuilder::new("k", "s").priority(Priority::Low).build())
        .await
        .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!(
        (
            s.finished,
            s.dead,
            s.ready,
            s.ready_by_priority[3],
            s.running
        ),
        (2, 2, 1, 1, 0)
    );
    let r = q.trim(100).await.unwrap();
    assert_eq!((r.finished_removed, r.dead_removed), (1, 1));
    let s = q.stats().await.unwrap();
    assert_eq!((s.finished, s.dead), (1, 1));
}

#[tokio::test]
async fn progress_script() {
    let h = setup().await;
    let q = h.queue("s");
    let (id, fence) = one_claimed(&q).await;
    assert!(q.progress(&id, fence, 30, "a third").await.unwrap());
    assert!(
        !q.progress(&id, fence + 1, 90, "stale").await.unwrap(),
        "a stale fence writes nothing"
    );
    let r = q.show(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.progress, r.progress_message.as_deref()),
        (30, Some("a third"))
    );
}

#[tokio::test]
async fn a_requested_cancel_wins_over_retry_and_hand_back() {
    let h = setup().await;
    let q = h.queue("s");
    let (a, fa) = one_claimed(&q).await;
    let (b, fb) = one_claimed(&q).await;
    q.cancel(&a).await.unwrap();
    q.cancel(&b).await.unwrap();
    let r = q
        .finish(&[
            FinishEntry {
                id: a.clone(),
                fence: fa,
                finish: Finish::Retry {
                    error: "e".into(),
                    history: "{}".into(),
                    run_at_ms: 1,
                },
            },
            FinishEntry {
                id: b.clone(),
                fence: fb,
                finish: Finish::Requeue,
            },
        ])
        .await
        .unwrap();
    assert_eq!(r.applied, 2);
    for id in [&a, &b] {
        assert_eq!(
            q.field(id, "status").await.unwrap().as_deref(),
            Some("cancelled"),
            "{id} must not run again"
        );
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.ready, s.retrying), (0, 0));
}

#[tokio::test]
async fn retention_zero_and_a_zero_idempotency_ttl_keep_the_queue_consistent() {
    let h = setup().await;
    let q = h.queue_with(
        "s",
        QueueOptions {
            idempotency_ttl: Duration::ZERO,
            finished_retention: Duration::ZERO,
            ..QueueOptions::default()
        },
    );
    let mut c = h.conn.clone();
    let plain = JobBuilder::new("k", "s").build();
    let keyed = JobBuilder::new("k", "s").idempotency_key("x").build();
    q.enqueue_batch(&[plain.clone(), keyed.clone()])
        .await
        .unwrap();
    assert_eq!(
        lrange(&mut c, q.keys().ready(Priority::Normal)).await.len(),
        2,
        "both jobs are ready"
    );
    // Cancelled with no retention: the record goes and nothing indexes it.
    q.cancel(&plain.id).await.unwrap();
    assert!(q.show(&plain.id).await.unwrap().is_none());
    assert_eq!(zcard(&mut c, q.keys().done()).await, 0);
    // The same id enqueued again is a new live job that trimming leaves alone.
    q.enqueue(&plain).await.unwrap();
    q.trim(100).await.unwrap();
    assert_eq!(
        q.field(&plain.id, "status").await.unwrap().as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn gate_release_script() {
    use chatter_worker::backend::{Gate, Gates};
    let h = setup().await;
    let gates = chatter_worker::queue::cron_gate::RedisGates::new(h.conn.clone(), &h.prefix);
    let mut c = h.conn.clone();
    let gate = Gate::Sweep { queue: "s" };
    let key = chatter_worker::queue::Keys::new(&h.prefix, "s").sweep_gate();
    let ttl = Duration::from_secs(60);
    assert!(gates.try_claim(gate, "a", ttl).await.unwrap());
    assert!(!gates.try_claim(gate, "b", ttl).await.unwrap(), "held by a");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
    // Only the holder gives it back.
    gates.release(gate, "b").await.unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("a"));
    gates.release(gate, "a").await.unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(v, None);
    assert!(gates.try_claim(gate, "b", ttl).await.unwrap(), "free again");
    // A key of another type is left alone (and is no error).
    let tick = Gate::CronTick {
        schedule: "x",
        tick_ms: 1,
    };
    let tick_key = chatter_worker::queue::Keys::cron_tick(&h.prefix, "x", 1);
    let _: i64 = redis::cmd("HSET")
        .arg(&tick_key)
        .arg("f")
        .arg("a")
        .query_async(&mut c)
        .await
        .unwrap();
    gates.release(tick, "a").await.unwrap();
    let t: String = redis::cmd("TYPE")
        .arg(&tick_key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(t, "hash");
}

#[tokio::test]
async fn cron_advance_script() {
    use chatter_worker::backend::CronGate;
    let h = setup().await;
    let gate = chatter_worker::queue::cron_gate::RedisGates::new(h.conn.clone(), &h.prefix);
    let mut c = h.conn.clone();
    let key = chatter_worker::queue::Keys::cron_last(&h.prefix, "s");
    assert_eq!(gate.last_fire("s").await.unwrap(), None, "never fired");
    gate.advance_last_fire("s", 100).await.unwrap();
    gate.advance_last_fire("s", 50).await.unwrap();
    assert_eq!(gate.last_fire("s").await.unwrap(), Some(100), "never back");
    gate.advance_last_fire("s", 200).await.unwrap();
    assert_eq!(gate.last_fire("s").await.unwrap(), Some(200));
    // Text, then a hash: each reads as never fired and is replaced by the next advance.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(gate.last_fire("s").await.unwrap(), None);
    gate.advance_last_fire("s", 10).await.unwrap();
    assert_eq!(gate.last_fire("s").await.unwrap(), Some(10));
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("f")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(gate.last_fire("s").await.unwrap(), None);
    gate.advance_last_fire("s", 5).await.unwrap();
    assert_eq!(gate.last_fire("s").await.unwrap(), Some(5));
    // A tick marked done replaces its claim; the clock is Redis's.
    assert!(!gate.is_done("s", 1000).await.unwrap());
    gate.mark_done("s", 1000, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(gate.is_done("s", 1000).await.unwrap());
    let skew = gate
        .now()
        .await
        .unwrap()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(skew.abs() < 60.0, "{skew}");
}
