//! The embedded backend's cross-queue roles (`chatter_worker::sqlite`): event log, sessions,
//! gates and cron marks, rate log. Each test has a SQLite file of its own; two or three
//! backends opened on it stand for processes sharing it (each its own pool of connections).
use chatter_worker::backend::ratelimit::{Limits, Take};
use chatter_worker::backend::{Backend, Gate, Session};
use chatter_worker::events::{Event, StreamId};
use chatter_worker::sqlite::SqliteBackend;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh file under the temp folder, removed (with its WAL files) at the end.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        let dir = std::env::temp_dir().join("cw-sqlite-roles");
        std::fs::create_dir_all(&dir).expect("temp folder");
        Self(dir.join(format!("{}.db", ulid::Ulid::new())))
    }

    async fn backends(&self, n: usize) -> Vec<Arc<SqliteBackend>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(Arc::new(
                SqliteBackend::open(&self.0).await.expect("open the file"),
            ));
        }
        out
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn event(i: usize) -> Event {
    Event::new("job.progress", Some("owner-1"), json!({ "i": i }))
}

#[tokio::test]
async fn event_ids_increase_across_backends_appending_at_once() {
    let db = TempDb::new();
    let backends = db.backends(2).await;
    let mut tasks = Vec::new();
    for (b, backend) in backends.iter().enumerate() {
        for t in 0..4 {
            let log = backend.event_log();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let batch: Vec<Event> = (0..2)
                        .map(|k| event(b * 1000 + t * 100 + i * 2 + k))
                        .collect();
                    log.append(10_000, &batch).await.expect("append");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let log = backends[0].event_log();
    let all = log
        .range_after(StreamId::default(), 1000)
        .await
        .expect("range");
    assert_eq!(all.len(), 2 * 4 * 25 * 2, "every event appended is there");
    for pair in all.windows(2) {
        assert!(
            pair[0].id < pair[1].id,
            "ids increase: {} then {}",
            pair[0].id,
            pair[1].id
        );
    }
    // Each batch stays in its order, consecutive ids.
    let ids: std::collections::HashMap<i64, StreamId> = all
        .iter()
        .map(|l| (l.event.data["i"].as_i64().expect("i"), l.id))
        .collect();
    for (&i, &id) in &ids {
        if i % 2 == 0 {
            assert!(ids[&(i + 1)] > id, "a batch keeps its order");
        }
    }
    assert_eq!(
        log.last_id().await.expect("last"),
        all.last().expect("some").id
    );
    assert_eq!(all[0].event.owner.as_deref(), Some("owner-1"));
    assert_eq!(all[0].event.kind, "job.progress");
    // The other backend reads the same log.
    let other = backends[1].event_log();
    assert_eq!(
        other.range_after(all[9].id, 5).await.expect("range"),
        all[10..15].to_vec()
    );
}

#[tokio::test]
async fn the_log_is_capped_and_says_when_a_resume_missed_events() {
    let db = TempDb::new();
    let backends = db.backends(2).await;
    let log = backends[0].event_log();
    assert_eq!(log.last_id().await.expect("last"), StreamId::default());
    assert!(
        !log.trimmed_after(StreamId::default())
            .await
            .expect("empty log lost nothing")
    );
    log.append(0, &[event(0)]).await.expect("maxlen 0");
    assert_eq!(
        log.last_id().await.expect("last"),
        StreamId::default(),
        "maxlen 0 appends nothing"
    );

    let first: Vec<Event> = (0..5).map(event).collect();
    log.append(5, &first).await.expect("append");
    let kept = log
        .range_after(StreamId::default(), 100)
        .await
        .expect("range");
    assert_eq!(kept.len(), 5);
    // Resuming after the newest or a kept id misses nothing.
    assert!(!log.trimmed_after(kept[2].id).await.expect("trimmed?"));

    let more: Vec<Event> = (5..12).map(event).collect();
    backends[1]
        .event_log()
        .append(5, &more)
        .await
        .expect("append");
    let now = log
        .range_after(StreamId::default(), 100)
        .await
        .expect("range");
    assert_eq!(now.len(), 5, "capped at maxlen");
    let data: Vec<i64> = now
        .iter()
        .map(|l| l.event.data["i"].as_i64().expect("i"))
        .collect();
    assert_eq!(data, vec![7, 8, 9, 10, 11], "the oldest go");
    assert!(
        log.trimmed_after(kept[2].id).await.expect("trimmed?"),
        "a resume after a trimmed id misses events"
    );
    assert!(
        log.trimmed_after(StreamId::default())
            .await
            .expect("trimmed?")
    );
    assert!(!log.trimmed_after(now[0].id).await.expect("trimmed?"));
    assert!(!log.trimmed_after(now[4].id).await.expect("trimmed?"));
    assert_eq!(log.last_id().await.expect("last"), now[4].id);
}

#[tokio::test]
async fn read_after_wakes_on_another_backends_append_and_times_out_without() {
    let db = TempDb::new();
    let backends = db.backends(2).await;
    let reader = backends[0].event_log();
    let writer = backends[1].event_log();

    let t = Instant::now();
    let got = reader
        .read_after(StreamId::default(), 300, 10)
        .await
        .expect("read");
    assert!(got.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "waited the block time"
    );

    let w = writer.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        w.append(100, &[event(1)]).await.expect("append");
    });
    let got = reader
        .read_after(StreamId::default(), 30_000, 10)
        .await
        .expect("read");
    append.await.expect("task");
    assert_eq!(got.len(), 1, "woken by the append");
    assert_eq!(got[0].event.data["i"], 1);

    // Waiting after the newest id: only what comes next.
    let last = got[0].id;
    let w = writer.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.append(100, &[event(2), event(3)]).await.expect("append");
    });
    let got = reader.read_after(last, 30_000, 10).await.expect("read");
    append.await.expect("task");
    let data: Vec<i64> = got
        .iter()
        .map(|l| l.event.data["i"].as_i64().expect("i"))
        .collect();
    assert_eq!(data, vec![2, 3]);
}

/// Another process's append is found by polling: a backend opened under another spelling of the
/// path (`<dir>/x/../<file>`) shares no in-process wake-up with the reader.
#[tokio::test]
async fn read_after_finds_an_append_it_was_not_woken_for() {
    let db = TempDb::new();
    let reader = db.backends(1).await.remove(0).event_log();
    let dir = db.0.parent().expect("folder").to_path_buf();
    std::fs::create_dir_all(dir.join("x")).expect("folder");
    let file = db.0.file_name().expect("name");
    let other = SqliteBackend::open(&dir.join("x").join("..").join(file))
        .await
        .expect("open again");
    let writer = other.event_log();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer.append(100, &[event(7)]).await.expect("append");
    });
    let got = reader
        .read_after(StreamId::default(), 30_000, 10)
        .await
        .expect("read");
    append.await.expect("task");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.data["i"], 7);
}

#[tokio::test]
async fn sessions_expire_and_are_deleted() {
    let db = TempDb::new();
    let backends = db.backends(2).await;
    let (a, b) = (backends[0].sessions(), backends[1].sessions());
    let alice = Session {
        user: "alice".into(),
        admin: true,
    };
    let bob = Session {
        user: "bob".into(),
        admin: false,
    };
    a.create("k-alice", &alice, Duration::from_secs(60))
        .await
        .expect("create");
    a.create("k-bob", &bob, Duration::from_millis(150))
        .await
        .expect("create");
    assert_eq!(
        b.get("k-alice").await.expect("get"),
        Some(alice.clone()),
        "another process sees it"
    );
    assert_eq!(b.get("k-bob").await.expect("get"), Some(bob.clone()));
    assert_eq!(b.get("nobody").await.expect("get"), None);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(b.get("k-bob").await.expect("get"), None, "expired");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cw_sessions WHERE key = 'k-bob'")
        .fetch_one(backends[0].pool())
        .await
        .expect("count");
    assert_eq!(left, 0, "an expired session read is deleted");
    // Replacing renews; delete removes.
    a.create("k-alice", &bob, Duration::from_secs(60))
        .await
        .expect("replace");
    assert_eq!(b.get("k-alice").await.expect("get"), Some(bob));
    b.delete("k-alice").await.expect("delete");
    assert_eq!(a.get("k-alice").await.expect("get"), None);
    // An unreadable session reads as none.
    sqlx::query("INSERT INTO cw_sessions (key, body, expires_ms) VALUES ('bad', 'not json', 9e15)")
        .execute(backends[0].pool())
        .await
        .expect("insert");
    assert_eq!(a.get("bad").await.expect("get"), None);
}

#[tokio::test]
async fn exactly_one_of_many_claimers_wins_a_gate() {
    let db = TempDb::new();
    let backends = db.backends(3).await;
    let gate = Gate::Sweep { queue: "q1" };
    let mut tasks = Vec::new();
    for (b, backend) in backends.iter().enumerate() {
        for i in 0..50 {
            let gates = backend.gates();
            tasks.push(tokio::spawn(async move {
                let holder = format!("p{b}-{i}");
                let won = gates
                    .try_claim(
                        Gate::Sweep { queue: "q1" },
                        &holder,
                        Duration::from_secs(60),
                    )
                    .await
                    .expect("claim");
                won.then_some(holder)
            }));
        }
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.expect("task"));
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let holder = &winners[0];
    let gates = backends[1].gates();
    gates.release(gate, "someone-else").await.expect("release");
    assert!(
        !gates
            .try_claim(gate, "late", Duration::from_secs(60))
            .await
            .expect("claim"),
        "a non-holder's release does nothing"
    );
    backends[2]
        .gates()
        .release(gate, holder)
        .await
        .expect("release");
    assert!(
        gates
            .try_claim(gate, "late", Duration::from_secs(60))
            .await
            .expect("claim"),
        "free once its holder released it"
    );
    // Another gate is another row; an expired claim is won again.
    let tick = Gate::CronTick {
        schedule: "s",
        tick_ms: 1000,
    };
    assert!(
        gates
            .try_claim(tick, "a", Duration::from_millis(100))
            .await
            .expect("claim")
    );
    assert!(
        !gates
            .try_claim(tick, "b", Duration::from_millis(100))
            .await
            .expect("claim")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        gates
            .try_claim(tick, "b", Duration::from_secs(60))
            .await
            .expect("claim"),
        "an expired claim is taken over"
    );
    gates.release(tick, "a").await.expect("release");
    assert!(
        !gates
            .try_claim(tick, "c", Duration::from_secs(60))
            .await
            .expect("claim"),
        "the old holder's release leaves the new claim"
    );
}

#[tokio::test]
async fn cron_marks_last_fire_and_done() {
    let db = TempDb::new();
    let backends = db.backends(2).await;
    let (a, b) = (backends[0].cron_gate(), backends[1].cron_gate());
    let now = a.now().await.expect("now");
    let drift = now
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_secs(5), "the clock is the machine's");

    assert_eq!(a.last_fire("s").await.expect("last"), None);
    a.advance_last_fire("s", 2000).await.expect("advance");
    assert_eq!(b.last_fire("s").await.expect("last"), Some(2000));
    b.advance_last_fire("s", 1000).await.expect("advance");
    assert_eq!(
        a.last_fire("s").await.expect("last"),
        Some(2000),
        "never moves back"
    );
    b.advance_last_fire("s", 3000).await.expect("advance");
    assert_eq!(a.last_fire("s").await.expect("last"), Some(3000));
    assert_eq!(a.last_fire("other").await.expect("last"), None);
    // A damaged mark reads as never fired and is replaced.
    sqlx::query("INSERT INTO cw_cron_last (schedule, tick_ms) VALUES ('bad', 'garbage')")
        .execute(backends[0].pool())
        .await
        .expect("insert");
    assert_eq!(a.last_fire("bad").await.expect("last"), None);
    a.advance_last_fire("bad", 5).await.expect("advance");
    assert_eq!(a.last_fire("bad").await.expect("last"), Some(5));

    // A tick claimed, then marked done (replacing the claim), is done for every process.
    let tick = Gate::CronTick {
        schedule: "s",
        tick_ms: 3000,
    };
    assert!(
        a.try_claim(tick, "p1", Duration::from_secs(30))
            .await
            .expect("claim")
    );
    assert!(
        !b.is_done("s", 3000).await.expect("done?"),
        "claimed is not done"
    );
    a.mark_done("s", 3000, Duration::from_secs(3600))
        .await
        .expect("mark");
    assert!(b.is_done("s", 3000).await.expect("done?"));
    assert!(!b.is_done("s", 4000).await.expect("done?"));
    assert!(
        !b.try_claim(tick, "p2", Duration::from_secs(30))
            .await
            .expect("claim"),
        "a done tick cannot be claimed"
    );
    a.release(tick, "p1").await.expect("release");
    assert!(
        b.is_done("s", 3000).await.expect("done?"),
        "the claimer's release leaves the mark"
    );
}

#[tokio::test]
async fn the_rate_log_never_grants_over_the_limit_across_backends() {
    let db = TempDb::new();
    let backends = db.backends(3).await;
    // A long window: every grant of the run stays in it, so the count is exact.
    let limits = Limits {
        window: Duration::from_secs(600),
        requests: Some(20),
        tokens: None,
    };
    let mut tasks = Vec::new();
    for backend in &backends {
        for _ in 0..10 {
            let log = backend.rate_log();
            tasks.push(tokio::spawn(async move {
                let mut granted = 0;
                let mut waits = Vec::new();
                for _ in 0..4 {
                    match log.take("acct", &limits, 1).await.expect("take") {
                        Take::Granted => granted += 1,
                        Take::Wait(d) => waits.push(d),
                        Take::TooLarge => panic!("1 token is not too large"),
                    }
                }
                (granted, waits)
            }));
        }
    }
    let (mut granted, mut waits) = (0, Vec::new());
    for t in tasks {
        let (g, w) = t.await.expect("task");
        granted += g;
        waits.extend(w);
    }
    assert_eq!(granted, 20, "exactly the limit is granted");
    assert_eq!(waits.len(), 3 * 10 * 4 - 20);
    assert!(
        waits
            .iter()
            .all(|d| *d > Duration::ZERO && *d <= Duration::from_secs(601)),
        "{waits:?}"
    );
    // Another account has its own window.
    let log = backends[0].rate_log();
    assert_eq!(
        log.take("other", &limits, 1).await.expect("take"),
        Take::Granted
    );
}

#[tokio::test]
async fn the_rate_log_counts_tokens_waits_and_refuses_too_large() {
    let db = TempDb::new();
    let backends = db.backends(2).await;
    let (a, b) = (backends[0].rate_log(), backends[1].rate_log());
    let limits = Limits {
        window: Duration::from_millis(400),
        requests: None,
        tokens: Some(100),
    };
    assert_eq!(
        a.take("t", &limits, 101).await.expect("take"),
        Take::TooLarge
    );
    assert_eq!(a.take("t", &limits, 60).await.expect("take"), Take::Granted);
    assert_eq!(b.take("t", &limits, 40).await.expect("take"), Take::Granted);
    let Take::Wait(d) = b.take("t", &limits, 10).await.expect("take") else {
        panic!("the window is full of tokens");
    };
    assert!(
        d > Duration::ZERO && d <= Duration::from_millis(401),
        "{d:?}"
    );
    tokio::time::sleep(d).await;
    assert_eq!(
        a.take("t", &limits, 10).await.expect("take"),
        Take::Granted,
        "granted once the oldest left"
    );

    // Sliding: within any window of the log, never more than the limit.
    let limits = Limits {
        window: Duration::from_millis(300),
        requests: Some(3),
        tokens: None,
    };
    let mut granted_at = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1000) {
        for log in [&a, &b] {
            if log.take("s", &limits, 1).await.expect("take") == Take::Granted {
                granted_at.push(Instant::now());
            }
        }
    }
    let rows: Vec<i64> =
        sqlx::query_scalar("SELECT at_ms FROM cw_rate_log WHERE account = 's' ORDER BY at_ms")
            .fetch_all(backends[0].pool())
            .await
            .expect("rows");
    assert!(
        rows.len() <= 3,
        "what the log holds fits one window: {rows:?}"
    );
    assert!(
        granted_at.len() >= 6,
        "grants resume as the window slides: {}",
        granted_at.len()
    );
}
