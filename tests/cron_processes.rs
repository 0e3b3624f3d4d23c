//! Three `chatter-worker run` processes run the scheduler on one Redis with an every-second
//! schedule for a minute; one is killed (SIGKILL) and restarted in the middle. Every tick is
//! enqueued exactly once: the enqueued ticks have no gap and no duplicate.
#[path = "common/mod.rs"]
mod common;

use common::{WorkerProcess, setup};
use std::time::{Duration, Instant};

#[tokio::test]
async fn three_processes_fire_every_second_exactly_once_through_a_kill_and_restart() {
    let h = setup().await;
    let dir = std::env::temp_dir().join(format!("cw-cron-{}", h.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schedules.toml");
    std::fs::write(
        &file,
        "[[schedule]]\nname = \"every\"\ncron = \"* * * * * *\"\nkind = \"ping\"\ncatch_up = \"skip\"\n",
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    // No pool here (chunking needs a database): the fired jobs stay in the maintenance queue.
    let spawn = || WorkerProcess::spawn(&h.url, &h.prefix, "chunking", &["--schedules", &path]);
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
    // The ticks whose gate says done, i.e. that were enqueued.
    let mut conn = h.conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:cron:every:*", h.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut ticks: Vec<i64> = keys
        .iter()
        .filter_map(|k| k.rsplit(':').next()?.parse().ok())
        .collect();
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
    let ready = h.queue("maintenance").stats().await.unwrap().ready;
    assert_eq!(ready as usize, ticks.len(), "one job per tick");
    assert!(
        metrics.contains("chatter_cron_fires_total{schedule=\"every\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("chatter_cron_next_fire_timestamp_seconds{schedule=\"every\"}"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_bad_schedule_stops_the_start_naming_it_and_the_field() {
    let h = setup().await;
    let dir = std::env::temp_dir().join(format!("cw-cron-bad-{}", h.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    for (body, want) in [
        (
            "cron = \"0 0 26 * * *\"\nkind = \"ping\"",
            "schedule \"nightly\": cron:",
        ),
        (
            "cron = \"0 0 2 * * *\"\ntimezone = \"Europe/Atlantis\"\nkind = \"ping\"",
            "schedule \"nightly\": timezone:",
        ),
        (
            "cron = \"0 0 2 * * *\"\nkind = \"reticulate_splines\"",
            "schedule \"nightly\": kind: unknown job kind",
        ),
    ] {
        let file = dir.join("schedules.toml");
        std::fs::write(&file, format!("[[schedule]]\nname = \"nightly\"\n{body}\n")).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatter-worker"))
            .args(["run", "--queues", "chunking", "--http-addr", "127.0.0.1:0"])
            .arg("--schedules")
            .arg(&file)
            .env("REDIS_URL", &h.url)
            .env("CW_PREFIX", &h.prefix)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(want), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
