//! `queues`: the depth per state of every known queue (a table, or JSON), pause and resume of one,
//! and one consistency sweep of one queue or all of them. A queue must be known to be paused or
//! swept, so a typo does not act on a queue nobody reads.
use super::context::{all_queues, backend, known_queue};
use crate::cli::QueuesAction;
use crate::config::Settings;
use crate::jobs::Registry;

pub async fn run(
    s: &Settings,
    registry: &Registry,
    action: Option<QueuesAction>,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        None => {
            let mut all = Vec::new();
            for q in all_queues(s, registry).await? {
                all.push(q.stats().await?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10}",
                    "queue",
                    "ready",
                    "scheduled",
                    "retrying",
                    "running",
                    "dead",
                    "finished",
                    "paused",
                    "workers",
                    "oldest_s"
                );
                for q in all {
                    println!(
                        "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10.1}",
                        q.queue,
                        q.ready,
                        q.scheduled,
                        q.retrying,
                        q.running,
                        q.dead,
                        q.finished,
                        q.paused,
                        q.workers,
                        q.oldest_ready_age_ms as f64 / 1000.0
                    );
                }
            }
        }
        Some(QueuesAction::Pause { queue }) => {
            known_queue(s, registry, &queue).await?.pause().await?;
            println!("paused {queue}");
        }
        Some(QueuesAction::Resume { queue }) => {
            known_queue(s, registry, &queue).await?.resume().await?;
            println!("resumed {queue}");
        }
        Some(QueuesAction::Sweep { queue }) => {
            let queues = match queue {
                Some(q) => vec![known_queue(s, registry, &q).await?],
                None => all_queues(s, registry).await?,
            };
            let gates = backend(s).await?.gates();
            let mut rows = Vec::new();
            for q in &queues {
                let r = crate::sweep::Sweep {
                    config: Default::default(),
                    queues: vec![q.clone()],
                    gates: gates.clone(),
                }
                .run_once()
                .await?;
                rows.push(serde_json::json!({
                    "queue": q.name(), "checked": r.checked, "repaired": r.repaired,
                    "dead_lettered": r.dead_lettered, "set_aside": r.set_aside,
                    "ready_check_skipped": r.ready_check_skipped,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{:<14} checked {}  repaired {}  dead-lettered {}  set aside {}",
                        r["queue"].as_str().unwrap_or("?"),
                        r["checked"],
                        r["repaired"],
                        r["dead_lettered"],
                        r["set_aside"]
                    );
                }
            }
        }
    }
    Ok(())
}
