//! `/metrics` passes `promtool check metrics` and shows every queue; `/healthz` and `/readyz` answer.
mod common;

use chatter_worker::jobs::JobBuilder;
use common::*;
use std::io::Write;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_show_every_queue() {
    let h = setup().await;
    let queues = ["chunking", "embedding", "workflows", "maintenance"];
    let w = WorkerProcess::spawn(&h.url, &h.prefix, &queues.join(","), &[]);
    let q = h.queue("maintenance");
    let jobs = [
        JobBuilder::new("ping", "maintenance").build(),
        JobBuilder::new("ping", "maintenance").build(),
    ];
    q.enqueue_batch(&jobs).await.unwrap();
    wait_until(Duration::from_secs(30), "both pings", || async {
        q.stats().await.unwrap().finished == 2
    })
    .await;

    let body = w.get("/metrics").await;
    let mut file = tempfile();
    file.1.write_all(body.as_bytes()).unwrap();
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file.0).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {promtool}: {e} (scripts/test.sh installs it)"));
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    for queue in queues {
        for metric in [
            "chatter_queue_jobs",
            "chatter_workers",
            "chatter_queue_paused",
            "chatter_jobs_rescued_total",
        ] {
            let label = format!("queue=\"{queue}\"");
            assert!(
                body.lines()
                    .any(|l| l.starts_with(metric) && l.contains(&label)),
                "{metric} for {queue} missing:\n{body}"
            );
        }
    }
    assert!(
        body.lines()
            .any(|l| l.starts_with("chatter_workers{queue=\"maintenance\"} 1")),
        "{body}"
    );
    let finished = body
        .lines()
        .find(|l| {
            l.starts_with("chatter_jobs_finished_total")
                && l.contains("kind=\"ping\"")
                && l.contains("outcome=\"completed\"")
        })
        .unwrap_or_else(|| panic!("no ping completions:\n{body}"));
    assert!(finished.ends_with(" 2"), "{finished}");
    assert!(body.contains("chatter_job_duration_seconds_bucket"));
    assert!(body.contains("chatter_job_wait_seconds_bucket"));
    assert!(body.lines().any(|l| l == "chatter_redis_up 1"));
    assert_eq!(
        http_get(&w.http, "/healthz").await.unwrap(),
        (200, "ok\n".to_string())
    );
    assert_eq!(http_get(&w.http, "/readyz").await.unwrap().0, 200);
    let _ = std::fs::remove_file(&file.0);
}

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let p = std::env::temp_dir().join(format!("cw-metrics-{}.txt", ulid::Ulid::new()));
    let f = std::fs::File::create(&p).unwrap();
    (p, f)
}
