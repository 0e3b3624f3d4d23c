//! `schedules`: every cron schedule of the schedules file (`--schedules`, else
//! `jobs/schedules.toml`) with its next fire (computed now) and its last (recorded in the backend
//! by the scheduler), as a table or JSON.
use super::context::backend;
use crate::config::Settings;
use crate::jobs::Registry;
use anyhow::Context;

/// `schedules`: every schedule with its next fire and its last (from Redis).
pub async fn run(s: &Settings, registry: &Registry, json: bool) -> anyhow::Result<()> {
    let path = s
        .schedules_path()
        .context("no schedules file: give --schedules or create jobs/schedules.toml")?;
    let list = crate::cron::load_with(&path, registry, &s.queue_options().limits)
        .map_err(anyhow::Error::msg)?;
    let gate = backend(s).await?.cron_gate();
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for sc in &list {
        let last = gate.last_fire(&sc.spec.name).await?;
        let ts = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339())
        };
        rows.push(serde_json::json!({
            "name": sc.spec.name, "cron": sc.spec.cron, "timezone": sc.spec.timezone,
            "kind": sc.spec.kind, "queue": sc.queue, "enabled": sc.spec.enabled,
            "catch_up": sc.spec.catch_up,
            "next_fire": sc.spec.enabled.then(|| sc.next_after(now).map(|t| t.to_rfc3339())).flatten(),
            "last_fire": ts(last),
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<26} {:<18} {:<14} {:<27} last",
            "name", "cron", "timezone", "next"
        );
        for r in &rows {
            let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            let next = if r["enabled"] == true {
                text("next_fire")
            } else {
                "(disabled)".into()
            };
            println!(
                "{:<26} {:<18} {:<14} {:<27} {}",
                text("name"),
                text("cron"),
                text("timezone"),
                next,
                text("last_fire")
            );
        }
    }
    Ok(())
}
