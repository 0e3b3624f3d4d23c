//! Corrupt queue data, script by script: wrong-type keys and records with bad or missing fields
//! are seeded around good jobs, the script runs, then a pool drains the queue. Every good job
//! completes, every bad record ends dead-lettered with its reason, and a scan of every key under
//! the test's prefix finds nothing stranded (each record sits in the structure its status names).
mod common;

use chatter_worker::jobs::{JobBuilder, Priority, Registry};
use chatter_worker::queue::{CancelResult, Finish, FinishEntry, RedisQueue};
use common::*;
use redis::aio::ConnectionManager;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const Q: &str = "c";
const LEASE: Duration = Duration::from_secs(30);

/// How a seeded record is broken, and the words its dead letter must give as the reason.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// The job key holds a string (the raw payload, say) instead of a hash.
    Str,
    /// The job key holds a list.
    List,
    BogusPriority,
    NoPriority,
    NoPayload,
    WeirdStatus,
    TextFence,
    /// A counter too large to add to (HINCRBY would overflow, Lua would lose digits).
    HugeAttempt,
    NoStatus,
}

impl Bad {
    fn reason(self) -> &'static str {
        match self {
            Bad::Str => "is a string, not a hash",
            Bad::List => "is a list, not a hash",
            Bad::BogusPriority => "priority 'bogus' is not one of",
            Bad::NoPriority => "no priority",
            Bad::NoPayload => "no payload",
            Bad::WeirdStatus => "status 'weird' is not a job status",
            Bad::TextFence => "fence 'x1' is not a whole number",
            Bad::HugeAttempt => "attempt '99999999999999999999' is not a whole number",
            Bad::NoStatus => "no status",
        }
    }
}

struct Case {
    q: RedisQueue,
    c: ConnectionManager,
    prefix: String,
    good: Vec<String>,
    bad: Vec<(String, Bad)>,
}

async fn case() -> (Harness, Case) {
    let h = setup().await;
    let q = h.queue(Q);
    let case = Case {
        c: h.conn.clone(),
        prefix: h.prefix.clone(),
        q,
        good: Vec::new(),
        bad: Vec::new(),
    };
    (h, case)
}

impl Case {
    async fn cmd(&mut self, args: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut self.c).await.unwrap()
    }

    /// Enqueue `n` good jobs (kind `ok`); returns their ids.
    async fn good(&mut self, n: usize, priority: Priority) -> Vec<String> {
        let jobs: Vec<_> = (0..n)
            .map(|_| JobBuilder::new("ok", Q).priority(priority).build())
            .collect();
        self.q.enqueue_batch(&jobs).await.unwrap();
        let ids: Vec<String> = jobs.into_iter().map(|j| j.id).collect();
        self.good.extend(ids.clone());
        ids
    }

    /// Enqueue one job and break its record as `bad` says, wherever it sits.
    async fn bad(&mut self, bad: Bad) -> String {
        let job = JobBuilder::new("ok", Q).build();
        self.q.enqueue(&job).await.unwrap();
        self.corrupt(&job.id, bad).await;
        job.id
    }

    async fn corrupt(&mut self, id: &str, bad: Bad) {
        let k = self.q.keys().job(id);
        match bad {
            Bad::Str => {
                self.cmd(&["DEL", &k]).await;
                self.cmd(&["SET", &k, "\u{1}raw bytes \u{ff}"]).await;
            }
            Bad::List => {
                self.cmd(&["DEL", &k]).await;
                self.cmd(&["RPUSH", &k, "a", "b"]).await;
            }
            Bad::BogusPriority => {
                self.cmd(&["HSET", &k, "priority", "bogus"]).await;
            }
            Bad::NoPriority => {
                self.cmd(&["HDEL", &k, "priority"]).await;
            }
            Bad::NoPayload => {
                self.cmd(&["HDEL", &k, "payload"]).await;
            }
            Bad::WeirdStatus => {
                self.cmd(&["HSET", &k, "status", "weird"]).await;
            }
            Bad::TextFence => {
                self.cmd(&["HSET", &k, "fence", "x1"]).await;
            }
            Bad::HugeAttempt => {
                self.cmd(&["HSET", &k, "attempt", "99999999999999999999"])
                    .await;
            }
            Bad::NoStatus => {
                self.cmd(&["HDEL", &k, "status"]).await;
            }
        }
        self.bad.push((id.to_string(), bad));
    }

    /// Put a key of the wrong type where a queue structure belongs.
    async fn wrong_type(&mut self, key: String) {
        self.cmd(&["DEL", &key]).await;
        self.cmd(&["HSET", &key, "not", "a structure"]).await;
    }

    /// Run a pool until every good job completed, then check the whole prefix.
    async fn drain_and_check(&mut self, h: &Harness) {
        let runs: Arc<Mutex<HashMap<String, u32>>> = Default::default();
        let mut reg = Registry::default();
        let counted = runs.clone();
        reg.register("ok", Q, move |job, _| {
            *counted.lock().unwrap().entry(job.id.clone()).or_default() += 1;
            async { Ok(Value::Null) }
        });
        let pool = h.start_pool(&self.q, reg, pool_config(4));
        let q = self.q.clone();
        let good = self.good.clone();
        wait_until(
            Duration::from_secs(30),
            "every good job to complete",
            || {
                let q = q.clone();
                let good = good.clone();
                async move {
                    let recs = q.show_many(&good).await.unwrap();
                    recs.iter()
                        .all(|r| r.as_ref().is_some_and(|r| r.status == "completed"))
                }
            },
        )
        .await;
        pool.stop().await;
        let twice: Vec<_> = runs
            .lock()
            .unwrap()
            .clone()
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(twice.is_empty(), "jobs ran more than once: {twice:?}");
        self.check().await;
    }

    /// Every bad record is a dead letter with its reason; every key under the prefix is a
    /// structure of its type, a record in the structure its status names, or a key set aside.
    async fn check(&mut self) {
        let dead = self.q.dead_list(0, 10_000).await.unwrap();
        let by_id: HashMap<&str, _> = dead.iter().map(|r| (r.id.as_str(), r)).collect();
        for (id, bad) in &self.bad {
            let r = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{bad:?} record {id} is not a dead letter: {dead:#?}"));
            let e = r.error_message.clone().unwrap_or_default();
            assert!(
                e.contains(bad.reason()),
                "{bad:?} record {id}: reason {e:?} does not say {:?}",
                bad.reason()
            );
            assert_eq!(r.status, "failed");
        }
        let keys: Vec<String> = {
            let mut out = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, ks): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}:*", self.prefix))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut self.c)
                    .await
                    .unwrap();
                out.extend(ks);
                cursor = next;
                if cursor == 0 {
                    break out;
                }
            }
        };
        let k = self.q.keys().clone();
        let mut members: HashMap<String, HashSet<String>> = HashMap::new();
        for p in Priority::ALL {
            let ids: Vec<String> = redis::cmd("LRANGE")
                .arg(k.ready(p))
                .arg(0)
                .arg(-1)
                .query_async(&mut self.c)
                .await
                .unwrap();
            members.entry("ready".into()).or_default().extend(ids);
        }
        for (name, key) in [
            ("scheduled", k.scheduled()),
            ("retry", k.retry()),
            ("leases", k.leases()),
            ("dead", k.dead()),
            ("done", k.done()),
        ] {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut self.c)
                .await
                .unwrap();
            members.insert(name.into(), ids.into_iter().collect());
        }
        // Drained: nothing may be left waiting, held or due (an entry there would be a job
        // stranded the other way round, or a duplicate).
        for set in ["ready", "leases", "scheduled", "retry"] {
            assert!(
                members.get(set).is_none_or(|s| s.is_empty()),
                "{set} still holds {:?}",
                members.get(set)
            );
        }
        let has = |set: &str, id: &str| members.get(set).is_some_and(|s| s.contains(id));
        let structures: HashMap<String, &str> = Priority::ALL
            .iter()
            .map(|p| (k.ready(*p), "list"))
            .chain([
                (k.scheduled(), "zset"),
                (k.retry(), "zset"),
                (k.leases(), "zset"),
                (k.dead(), "zset"),
                (k.done(), "zset"),
                (k.notify(), "list"),
                (k.workers(), "zset"),
            ])
            .collect();
        let corrupt = format!("{}:{{{Q}}}:corrupt:", self.prefix);
        for key in keys {
            let t: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut self.c)
                .await
                .unwrap();
            if let Some(want) = structures.get(&key) {
                assert_eq!(t, *want, "{key} is a {t}");
            } else if let Some(id) = key.strip_prefix(&k.job_prefix()) {
                assert_eq!(t, "hash", "job key {key} is a {t}");
                let status = self
                    .q
                    .field(id, "status")
                    .await
                    .unwrap()
                    .unwrap_or_default();
                let home = match status.as_str() {
                    "pending" => has("ready", id) || has("scheduled", id),
                    "running" => has("leases", id),
                    "retrying" => has("retry", id),
                    "failed" => has("dead", id),
                    "completed" | "cancelled" => has("done", id),
                    other => panic!("job {id} has status {other:?}"),
                };
                assert!(home, "job {id} ({status}) is stranded: in no structure");
            } else {
                let allowed = key.starts_with(&corrupt)
                    || key.starts_with(&k.owner_index_prefix())
                    || key.starts_with(&k.idem_prefix())
                    || key == format!("{}:queues", self.prefix)
                    || key.starts_with(&format!("{}:events", self.prefix));
                assert!(allowed, "unexpected key {key} ({t})");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sets_aside_wrong_types_and_dead_letters_bad_records_around_good_jobs() {
    let (h, mut c) = case().await;
    c.good(2, Priority::Normal).await;
    for bad in [
        Bad::Str,
        Bad::List,
        Bad::BogusPriority,
        Bad::NoPriority,
        Bad::NoPayload,
        Bad::WeirdStatus,
        Bad::TextFence,
        Bad::HugeAttempt,
        Bad::NoStatus,
    ] {
        c.bad(bad).await;
        c.good(1, Priority::Normal).await;
    }
    // Due scheduled and retrying jobs with bad records, promoted by the fetch.
    for (bad, set) in [(Bad::Str, "scheduled"), (Bad::BogusPriority, "retry")] {
        let id = c.bad(bad).await;
        let key = if set == "scheduled" {
            c.q.keys().scheduled()
        } else {
            c.q.keys().retry()
        };
        let ready = c.q.keys().ready(Priority::Normal);
        c.cmd(&["LREM", &ready, "0", &id]).await;
        c.cmd(&["ZADD", &key, "1", &id]).await;
    }
    let g = c.good(1, Priority::Low).await;
    c.cmd(&["LREM", &c.q.keys().ready(Priority::Low), "0", &g[0]])
        .await;
    c.cmd(&["ZADD", &c.q.keys().scheduled(), "1", &g[0]]).await;
    // A structure of the wrong type: the fetch sets it aside and goes on.
    c.wrong_type(c.q.keys().ready(Priority::Critical)).await;
    c.wrong_type(c.q.keys().notify()).await;
    // A duplicate ready entry of a job already claimed is dropped, not run twice.
    let first = c.q.fetch("w0", 1, LEASE).await.unwrap();
    assert_eq!(first.jobs.len(), 1);
    let claimed = first.jobs[0].clone();
    c.cmd(&["RPUSH", &c.q.keys().ready(Priority::High), &claimed.id])
        .await;
    let before = c.q.fetch("w0", 100, LEASE).await.unwrap();
    assert!(before.jobs.iter().all(|j| j.id != claimed.id));
    assert_eq!((first.orphans + before.orphans) as usize, c.bad.len());
    // Hand the claimed ones back and let a pool run everything.
    let entries: Vec<FinishEntry> = std::iter::once(claimed)
        .chain(before.jobs)
        .map(|j| FinishEntry {
            id: j.id,
            fence: j.fence,
            finish: Finish::Requeue,
        })
        .collect();
    assert_eq!(
        c.q.finish(&entries).await.unwrap().applied as usize,
        entries.len()
    );
    assert_eq!(
        c.q.count_set_aside().await.unwrap(),
        3,
        "ready:critical, notify and the list record"
    );
    c.drain_and_check(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_dead_letters_records_broken_while_they_ran() {
    let (h, mut c) = case().await;
    c.good(4, Priority::Normal).await;
    let broken: Vec<String> = vec![
        c.bad(Bad::TextFence).await,
        c.bad(Bad::TextFence).await,
        c.bad(Bad::TextFence).await,
        c.bad(Bad::TextFence).await,
    ];
    // Clean them again so the fetch claims them, then break each while it "runs".
    for id in &broken {
        c.cmd(&["HSET", &c.q.keys().job(id), "fence", "0"]).await;
    }
    c.bad.clear();
    let claimed = c.q.fetch("w", 100, LEASE).await.unwrap().jobs;
    assert_eq!(claimed.len(), 8);
    let breaks = [Bad::Str, Bad::BogusPriority, Bad::NoPriority, Bad::List];
    for (id, bad) in broken.iter().zip(breaks) {
        c.corrupt(id, bad).await;
    }
    c.wrong_type(c.q.keys().done()).await;
    c.wrong_type(c.q.keys().retry()).await;
    // The issue's case: a bogus or missing priority then one retryable failure, and a hand-back.
    let actions = |i: usize| match i % 4 {
        0 => Finish::Completed { result: None },
        1 => Finish::Retry {
            error: "boom".into(),
            history: r#"{"attempt":1,"error":"boom"}"#.into(),
            run_at_ms: 0,
        },
        2 => Finish::Requeue,
        _ => Finish::Snooze { run_at_ms: 0 },
    };
    let entries: Vec<FinishEntry> = claimed
        .iter()
        .enumerate()
        .map(|(i, j)| FinishEntry {
            id: j.id.clone(),
            fence: j.fence,
            finish: actions(i),
        })
        .collect();
    let r = c.q.finish(&entries).await.unwrap();
    assert_eq!((r.applied, r.stale), (4, 4), "{r:?}");
    c.drain_and_check(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_and_rescue_hand_back_good_jobs_and_dead_letter_bad_ones() {
    let (h, mut c) = case().await;
    c.good(3, Priority::Normal).await;
    let ids = [
        c.bad(Bad::TextFence).await,
        c.bad(Bad::TextFence).await,
        c.bad(Bad::TextFence).await,
    ];
    for id in &ids {
        c.cmd(&["HSET", &c.q.keys().job(id), "fence", "0"]).await;
    }
    c.bad.clear();
    let claimed =
        c.q.fetch("w", 100, Duration::from_millis(1))
            .await
            .unwrap()
            .jobs;
    assert_eq!(claimed.len(), 6);
    for (id, bad) in ids
        .iter()
        .zip([Bad::Str, Bad::BogusPriority, Bad::WeirdStatus])
    {
        c.corrupt(id, bad).await;
    }
    c.wrong_type(c.q.keys().workers()).await;
    let held: Vec<(String, u64)> = claimed.iter().map(|j| (j.id.clone(), j.fence)).collect();
    let hb =
        c.q.heartbeat("w", &held, Duration::from_millis(1), LEASE)
            .await
            .unwrap();
    assert_eq!(
        hb.lost.len(),
        1,
        "the record that is no longer a hash is lost: {hb:?}"
    );
    // The sweep sets the dead set of the wrong type aside, dead-letters the three and moves
    // their fences on: their holder is told.
    c.wrong_type(c.q.keys().dead()).await;
    let r = c.q.sweep(LEASE).await.unwrap();
    assert_eq!(r.dead_lettered, 3, "{r:?}");
    let hb =
        c.q.heartbeat("w", &held, Duration::from_millis(1), LEASE)
            .await
            .unwrap();
    let mut lost: Vec<String> = hb.lost.into_iter().map(|(id, _)| id).collect();
    lost.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(lost, want, "a dead-lettered job's holder loses it");
    let q = c.q.clone();
    wait_until(Duration::from_secs(5), "every lease to be rescued", || {
        let q = q.clone();
        async move {
            q.rescue(100).await.unwrap();
            q.stats().await.unwrap().running == 0
        }
    })
    .await;
    c.drain_and_check(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_replay_purge_and_trim_survive_bad_records() {
    let (h, mut c) = case().await;
    c.good(2, Priority::High).await;
    // cancel: a string record and a bogus priority are dead-lettered, not half-cancelled.
    let s = c.bad(Bad::Str).await;
    let b = c.bad(Bad::BogusPriority).await;
    assert_eq!(
        c.q.cancel(&s).await.unwrap(),
        CancelResult::AlreadyFinished("failed".into())
    );
    assert_eq!(
        c.q.cancel(&b).await.unwrap(),
        CancelResult::AlreadyFinished("failed".into())
    );
    let kept = c.good(1, Priority::Low).await;
    assert_eq!(c.q.cancel(&kept[0]).await.unwrap(), CancelResult::Cancelled);
    c.good.retain(|id| *id != kept[0]);
    // replay: a dead letter overwritten with a string becomes a record saying so and stays
    // dead; one with no payload stays dead; one with a bogus priority runs at normal.
    let replayable = c.good(1, Priority::Normal).await.remove(0);
    let no_payload = c.good(1, Priority::Normal).await.remove(0);
    let overwritten = c.good(1, Priority::Normal).await.remove(0);
    for id in [&replayable, &no_payload, &overwritten] {
        c.cmd(&["LREM", &c.q.keys().ready(Priority::Normal), "0", id])
            .await;
        c.cmd(&["HSET", &c.q.keys().job(id), "status", "failed"])
            .await;
        c.cmd(&["ZADD", &c.q.keys().dead(), "1", id]).await;
    }
    c.good.retain(|id| *id != no_payload && *id != overwritten);
    c.cmd(&["HSET", &c.q.keys().job(&replayable), "priority", "bogus"])
        .await;
    c.corrupt(&no_payload, Bad::NoPayload).await;
    c.corrupt(&overwritten, Bad::Str).await;
    c.wrong_type(c.q.keys().notify()).await;
    for (id, n) in [(&replayable, 1), (&no_payload, 0), (&overwritten, 0)] {
        assert_eq!(c.q.replay(Some(id), 1).await.unwrap(), n, "replay of {id}");
    }
    assert_eq!(
        c.q.field(&replayable, "priority").await.unwrap().as_deref(),
        Some("normal")
    );
    // purge: a dead entry whose key is a string goes without an error.
    let purged = c.good(1, Priority::Normal).await.remove(0);
    c.good.retain(|id| *id != purged);
    c.cmd(&["LREM", &c.q.keys().ready(Priority::Normal), "0", &purged])
        .await;
    c.cmd(&["DEL", &c.q.keys().job(&purged)]).await;
    c.cmd(&["SET", &c.q.keys().job(&purged), "x"]).await;
    c.cmd(&["ZADD", &c.q.keys().dead(), "1", &purged]).await;
    assert_eq!(c.q.purge_dead(Some(&purged), 1).await.unwrap(), 1);
    // trim: a finished entry whose key is a list is removed with its index entry.
    let trimmed = c.good(1, Priority::Normal).await.remove(0);
    c.good.retain(|id| *id != trimmed);
    c.cmd(&["LREM", &c.q.keys().ready(Priority::Normal), "0", &trimmed])
        .await;
    c.cmd(&["DEL", &c.q.keys().job(&trimmed)]).await;
    c.cmd(&["RPUSH", &c.q.keys().job(&trimmed), "x"]).await;
    c.cmd(&["ZADD", &c.q.keys().done(), "1", &trimmed]).await;
    let t = c.q.trim(100).await.unwrap();
    assert_eq!(t.finished_removed, 1);
    // stats and progress read around a head record that is not a hash.
    let head = c.good(1, Priority::Critical).await.remove(0);
    c.good.retain(|id| *id != head);
    c.corrupt(&head, Bad::Str).await;
    c.wrong_type(c.q.keys().scheduled()).await;
    let st = c.q.stats().await.unwrap();
    assert_eq!(st.ready_by_priority[0], 1);
    assert!(!c.q.progress(&head, 1, 50, "half").await.unwrap());
    c.drain_and_check(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_sets_aside_wrong_types_and_refuses_a_bad_call_whole() {
    let (h, mut c) = case().await;
    for key in [
        c.q.keys().ready(Priority::Normal),
        c.q.keys().scheduled(),
        c.q.keys().notify(),
        c.q.keys().owner_index("u1"),
    ] {
        c.wrong_type(key).await;
    }
    c.cmd(&["HSET", &format!("{}k1", c.q.keys().idem_prefix()), "a", "b"])
        .await;
    let jobs = vec![
        JobBuilder::new("ok", Q).owner("u1").build(),
        JobBuilder::new("ok", Q).idempotency_key("k1").build(),
        // Far enough ahead that it is still in the future when the script runs (a 1 ms delay
        // could elapse first on a loaded machine, and the job would go to ready instead).
        JobBuilder::new("ok", Q)
            .delay(Duration::from_millis(500))
            .build(),
    ];
    let r = c.q.enqueue_batch(&jobs).await.unwrap();
    assert!(r.iter().all(|e| e.created), "{r:?}");
    c.good.extend(jobs.iter().map(|j| j.id.clone()));
    assert_eq!(c.q.count_set_aside().await.unwrap(), 4);
    // A raw call with a priority no list exists for writes nothing at all.
    let err = redis::Script::new(&format!(
        "{}{}",
        include_str!("../src/queue/scripts/lib.lua"),
        include_str!("../src/queue/scripts/enqueue.lua")
    ))
    .key(c.q.keys().job_prefix())
    .key(c.q.keys().ready_prefix())
    .key(c.q.keys().scheduled())
    .key(c.q.keys().notify())
    .key(c.q.keys().idem_prefix())
    .key(c.q.keys().owner_index_prefix())
    .arg(1)
    .arg(0)
    .arg(&["good1", "{}", "normal", "0", "1", "", "", "1"])
    .arg(&["bad1", "{}", "bogus", "0", "1", "", "", "1"])
    .invoke_async::<redis::Value>(&mut c.c)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("priority 'bogus'"), "{err}");
    assert_eq!(c.q.field("good1", "status").await.unwrap(), None);
    c.drain_and_check(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_puts_stranded_jobs_back_and_dead_letters_bad_records() {
    let (h, mut c) = case().await;
    let k = c.q.keys().clone();
    // Pending in no list, running without a lease, retrying in no set, finished unindexed.
    let pending = c.good(3, Priority::Normal).await;
    c.cmd(&["DEL", &k.ready(Priority::Normal)]).await;
    let running = c.good(2, Priority::High).await;
    c.q.fetch("w", 2, LEASE).await.unwrap();
    c.cmd(&["DEL", &k.leases()]).await;
    let retrying = c.good(1, Priority::Low).await;
    c.cmd(&["DEL", &k.ready(Priority::Low)]).await;
    c.cmd(&["HSET", &k.job(&retrying[0]), "status", "retrying"])
        .await;
    let failed = c.good(1, Priority::Low).await.remove(0);
    c.good.retain(|id| *id != failed);
    c.cmd(&["DEL", &k.ready(Priority::Low)]).await;
    c.cmd(&["HSET", &k.job(&failed), "status", "failed"]).await;
    let done = c.good(1, Priority::Low).await.remove(0);
    c.cmd(&["DEL", &k.ready(Priority::Low)]).await;
    c.cmd(&["HSET", &k.job(&done), "status", "completed"]).await;
    // Malformed records in no structure at all.
    for bad in [
        Bad::Str,
        Bad::List,
        Bad::BogusPriority,
        Bad::NoPayload,
        Bad::WeirdStatus,
    ] {
        let id = c.bad(bad).await;
        c.cmd(&["LREM", &k.ready(Priority::Normal), "0", &id]).await;
    }
    c.wrong_type(k.dead()).await;
    let sweep = chatter_worker::sweep::Sweep {
        config: chatter_worker::sweep::SweepConfig {
            lease: Duration::from_millis(300),
            ..Default::default()
        },
        queues: vec![std::sync::Arc::new(c.q.clone())],
        gates: std::sync::Arc::new(chatter_worker::queue::cron_gate::RedisGates::new(
            h.conn.clone(),
            &h.prefix,
        )),
    };
    let r = sweep.run_once().await.unwrap();
    assert_eq!(r.dead_lettered, 5, "{r:?}");
    assert_eq!(r.repaired, 3 + 2 + 1 + 1 + 1, "{r:?}");
    assert_eq!(r.set_aside, 2, "the dead set and the list record");
    assert_eq!(
        c.q.sweep(LEASE).await.unwrap().repaired,
        0,
        "a second pass finds nothing to do"
    );
    // The running ones got a full lease (a live holder would keep it by heartbeat); nobody
    // holds them here, so it runs out and the rescuer hands them back.
    assert_eq!(
        c.q.rescue(100).await.unwrap().requeued,
        0,
        "not before the lease ends"
    );
    let q = c.q.clone();
    wait_until(Duration::from_secs(5), "the two leases to run out", || {
        let q = q.clone();
        async move { q.rescue(100).await.unwrap().requeued == 2 }
    })
    .await;
    assert_eq!(pending.len() + running.len(), 5);
    c.drain_and_check(&h).await;
}

#[tokio::test]
async fn the_cron_and_rate_limit_scripts_replace_a_damaged_key() {
    use chatter_worker::backend::Backend;
    use chatter_worker::cron::{CatchUp, Schedule, ScheduleSpec, Scheduler};
    use chatter_worker::jobs::embed::limiter::RateLimiter;
    use chatter_worker::ratelimit::{Limits, SharedLimiter};
    let (h, mut c) = case().await;
    let backend = std::sync::Arc::new(chatter_worker::queue::RedisBackend::new(
        &h.url,
        &h.prefix,
        h.conn.clone(),
    ));
    // A schedule's last-fire key holding a hash: the scheduler still fires and repairs it.
    let spec = ScheduleSpec {
        name: "tick".into(),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        kind: "ping".into(),
        args: Default::default(),
        priority: Priority::Normal,
        max_retries: 0,
        timeout_secs: 60,
        catch_up: CatchUp::Skip,
        grace_secs: 300,
        enabled: true,
    };
    let mut s = Scheduler {
        schedules: vec![Schedule::parse(spec, &Registry::builtin()).unwrap()],
        backend: backend.clone(),
        options: Default::default(),
        poll: Duration::from_millis(100),
        token: "t".into(),
    };
    let last = format!("{}:cron:tick:last", h.prefix);
    c.wrong_type(last.clone()).await;
    let t0 = chrono::Utc::now();
    s.pass(t0).await.unwrap();
    let fired = s
        .pass(t0 + chrono::Duration::seconds(2))
        .await
        .unwrap()
        .fired;
    assert!(!fired.is_empty(), "the schedule fires past a damaged key");
    let t: String = redis::cmd("TYPE")
        .arg(&last)
        .query_async(&mut c.c)
        .await
        .unwrap();
    assert_eq!(t, "string");
    // A rate-limit log of the wrong type: the next take replaces it.
    let limits = Limits {
        window: Duration::from_secs(1),
        requests: Some(3),
        tokens: None,
    };
    let l = SharedLimiter::new(backend.rate_log(), limits);
    c.wrong_type(format!("{}:ratelimit:{{acct}}:log", h.prefix))
        .await;
    assert_eq!(l.try_take("acct", 1).await.unwrap(), None);
}
