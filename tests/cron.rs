//! Cron schedules: next-fire times across the daylight-saving changes of Europe/Berlin and
//! America/New_York (an injected clock, no sleeping), bad schedules refused by name and field,
//! and the scheduler's exactly-once firing and catch-up policies on the real Redis, with
//! several schedulers driven by an injected clock.
#[path = "common/mod.rs"]
mod common;

use chatter_worker::cron::{CatchUp, Schedule, ScheduleSpec, Scheduler, load};
use chatter_worker::jobs::Registry;
use chatter_worker::queue::{Keys, QueueOptions, RedisBackend};
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

fn spec(name: &str, cron: &str, tz: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cron: cron.into(),
        timezone: tz.into(),
        kind: "ping".into(),
        args: Default::default(),
        priority: chatter_worker::jobs::Priority::Normal,
        max_retries: 0,
        timeout_secs: 60,
        catch_up: CatchUp::Skip,
        grace_secs: 300,
        enabled: true,
    }
}

fn schedule(cron: &str, tz: &str) -> Schedule {
    Schedule::parse(spec("s", cron, tz), &Registry::builtin()).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The next `n` fires after `from`, as RFC 3339 UTC.
fn fires(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut t = utc(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s.next_after(t).unwrap();
        out.push(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    out
}

#[test]
fn daily_fires_follow_berlin_across_both_changes() {
    // 02:30 local: on 2026-03-29 02:00-03:00 does not exist (no fire that day); on 2026-10-25
    // 02:30 happens twice (one fire, at the first).
    let s = schedule("0 30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&s, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ]
    );
    assert_eq!(
        fires(&s, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z"
        ]
    );
    // Chatter's 5-field form works the same (second 0).
    let five = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        fires(&five, "2026-03-27T12:00:00Z", 3),
        fires(&s, "2026-03-27T12:00:00Z", 3)
    );
}

#[test]
fn hourly_fires_keep_every_real_hour_in_new_york() {
    // Every hour at :15. Spring forward (2026-03-08 02:00 EST -> 03:00 EDT): local 02:15 does
    // not exist, so real hours stay one apart. Fall back (2026-11-01 02:00 EDT -> 01:00 EST):
    // local 01:15 happens twice and both fire (the hour field repeats).
    let s = schedule("0 15 * * * *", "America/New_York");
    assert_eq!(
        fires(&s, "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:15:00Z",
            "2026-03-08T07:15:00Z",
            "2026-03-08T08:15:00Z"
        ]
    );
    assert_eq!(
        fires(&s, "2026-11-01T04:30:00Z", 4),
        [
            "2026-11-01T05:15:00Z",
            "2026-11-01T06:15:00Z",
            "2026-11-01T07:15:00Z",
            "2026-11-01T08:15:00Z"
        ]
    );
    // A fixed 01:30 on the fall-back day fires once (05:30Z, EDT), not again at 06:30Z (EST).
    let daily = schedule("0 30 1 * * *", "America/New_York");
    assert_eq!(
        fires(&daily, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // And a fixed 02:30 on the spring-forward day does not fire.
    let gap = schedule("0 30 2 * * *", "America/New_York");
    assert_eq!(
        fires(&gap, "2026-03-07T12:00:00Z", 2),
        ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
    );
}

#[test]
fn bad_schedules_are_refused_by_name_and_field() {
    let r = Registry::builtin();
    let bad = |f: &dyn Fn(&mut ScheduleSpec)| {
        let mut s = spec("nightly", "0 0 2 * * *", "UTC");
        f(&mut s);
        Schedule::parse(s, &r).unwrap_err().to_string()
    };
    let e = bad(&|s| s.cron = "0 0 25 * * *".into());
    assert!(e.starts_with("schedule \"nightly\": cron:"), "{e}");
    let e = bad(&|s| s.timezone = "Mars/Olympus".into());
    assert!(
        e.contains("schedule \"nightly\": timezone: \"Mars/Olympus\""),
        "{e}"
    );
    let e = bad(&|s| s.kind = "launch_rockets".into());
    assert!(
        e.contains("schedule \"nightly\": kind: unknown job kind \"launch_rockets\""),
        "{e}"
    );
    let e = bad(&|s| s.max_retries = 11);
    assert!(e.contains("max_retries"), "{e}");
    let e = bad(&|s| s.grace_secs = 2);
    assert!(
        e.contains("schedule \"nightly\": grace_secs: 2 is outside 15..="),
        "{e}"
    );
    let e = bad(&|s| s.cron = "0 0 0 30 2 *".into());
    assert!(
        e.contains("schedule \"nightly\": cron:") && e.contains("never fires"),
        "{e}"
    );
    let e = bad(&|s| {
        s.kind = "sleep".into();
        s.args.insert("ms".into(), serde_json::json!("soon"));
    });
    assert!(e.contains("schedule \"nightly\": args:"), "{e}");
    // The shipped file: Chatter's four seeded schedules, all valid.
    let shipped = load(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/schedules.toml")),
        &r,
    )
    .unwrap();
    let names: Vec<&str> = shipped.iter().map(|s| s.spec.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "database_maintenance",
            "document_archiving",
            "conversation_cleanup",
            "vector_store_maintenance"
        ]
    );
    // document_archiving: Sundays 03:00 UTC.
    assert_eq!(
        fires(&shipped[1], "2026-11-26T00:00:00Z", 1),
        ["2026-11-29T03:00:00Z"]
    );
}

async fn scheduler(h: &common::Harness, specs: &[ScheduleSpec]) -> Scheduler {
    let r = Registry::builtin();
    Scheduler {
        schedules: specs
            .iter()
            .map(|s| Schedule::parse(s.clone(), &r).unwrap())
            .collect(),
        backend: std::sync::Arc::new(RedisBackend::new(&h.url, &h.prefix, h.conn.clone())),
        options: QueueOptions::default(),
        poll: Duration::from_millis(100),
        token: ulid::Ulid::new().to_string(),
    }
}

#[tokio::test]
async fn three_schedulers_fire_each_tick_once_on_an_injected_clock() {
    let h = common::setup().await;
    let every = spec("every_second", "* * * * * *", "UTC");
    let mut s: Vec<Scheduler> = Vec::new();
    for _ in 0..3 {
        s.push(scheduler(&h, std::slice::from_ref(&every)).await);
    }
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    // The first pass starts the schedule; then 60 s of passes every 250 ms, the three
    // schedulers interleaved in a different order each time.
    s[0].pass(t0).await.unwrap();
    let mut fired = Vec::new();
    for step in 1..=240 {
        let now = t0 + chrono::Duration::milliseconds(250 * step);
        for k in 0..3 {
            let i = (step as usize + k) % 3;
            fired.extend(s[i].pass(now).await.unwrap().fired);
        }
    }
    let mut ticks: Vec<i64> = fired.iter().map(|(_, ms)| *ms).collect();
    ticks.sort();
    let want: Vec<i64> = (1..=60)
        .map(|i| (t0 + chrono::Duration::seconds(i)).timestamp_millis())
        .collect();
    assert_eq!(ticks, want, "every tick once, none missing");
    assert_eq!(h.queue("maintenance").stats().await.unwrap().ready, 60);
}

#[tokio::test]
async fn missed_ticks_follow_the_catch_up_policy() {
    let h = common::setup().await;
    let mut skip = spec("skip", "* * * * * *", "UTC");
    skip.grace_secs = 15;
    let once = ScheduleSpec {
        name: "once".into(),
        catch_up: CatchUp::Once,
        ..skip.clone()
    };
    let mut s = scheduler(&h, &[skip, once]).await;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    s.pass(t0).await.unwrap();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let fired = s.pass(at(3)).await.unwrap().fired;
    assert_eq!(
        fired.len(),
        6,
        "3 ticks each, all within the grace: {fired:?}"
    );
    // Down from 3 s to 40 s: ticks 4..=24 are older than the 15 s grace at 40 s.
    let fired = s.pass(at(40)).await.unwrap().fired;
    let of = |name: &str| -> Vec<i64> {
        fired
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, ms)| (ms - t0.timestamp_millis()) / 1000)
            .collect()
    };
    assert_eq!(
        of("skip"),
        (25..=40).collect::<Vec<_>>(),
        "missed ticks dropped"
    );
    let mut once_ticks = vec![24];
    once_ticks.extend(25..=40);
    assert_eq!(
        of("once"),
        once_ticks,
        "missed ticks coalesced into the newest (24)"
    );
    // Nothing is owed afterwards.
    assert!(s.pass(at(40)).await.unwrap().fired.is_empty());
    assert_eq!(s.pass(at(41)).await.unwrap().fired.len(), 2);
    // A day down costs one bounded pass: only the grace period's ticks are looked at.
    let started = std::time::Instant::now();
    let fired = s.pass(at(41 + 86_400)).await.unwrap().fired;
    assert_eq!(fired.len(), 16 + 17, "{} fired", fired.len());
    println!("a pass after a day down: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_claim_left_by_a_dead_process_is_taken_over() {
    let h = common::setup().await;
    let every = spec("every_second", "* * * * * *", "UTC");
    let mut a = scheduler(&h, std::slice::from_ref(&every)).await;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    a.pass(t0).await.unwrap();
    // A process claimed tick 1 and died before enqueueing it.
    let tick1 = (t0 + chrono::Duration::seconds(1)).timestamp_millis();
    let gate = Keys::cron_tick(&h.prefix, "every_second", tick1);
    let mut conn = h.conn.clone();
    let _: () = redis::cmd("SET")
        .arg(&gate)
        .arg("claimed")
        .arg("EX")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let now = t0 + chrono::Duration::milliseconds(1500);
    assert!(
        a.pass(now).await.unwrap().fired.is_empty(),
        "claimed elsewhere: wait"
    );
    // The claim expires; the tick is enqueued by the next pass, once.
    common::wait_until(Duration::from_secs(5), "the claim to expire", || async {
        let mut c = h.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(&gate)
            .query_async(&mut c)
            .await
            .unwrap();
        v.is_none()
    })
    .await;
    let fired = a.pass(now).await.unwrap().fired;
    assert_eq!(fired, [("every_second".to_string(), tick1)]);
    assert!(a.pass(now).await.unwrap().fired.is_empty());
}
