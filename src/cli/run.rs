//! `run`: the worker process. Applies `run`'s own flags over the settings, runs the pools, the
//! rescuer, retention, the scheduler and the HTTP server until SIGTERM or SIGINT, then prints
//! what each pool handed back.
use crate::cli::RunArgs;
use crate::config::Settings;
use crate::jobs::Registry;
use crate::runtime;

pub async fn run(mut s: Settings, registry: Registry, a: RunArgs) -> anyhow::Result<()> {
    if !a.queues.is_empty() {
        s.queues = a.queues;
    }
    if let Some(c) = a.concurrency {
        s.concurrency = c;
    }
    if let Some(h) = a.http_addr {
        s.http_addr = h;
    }
    if let Some(l) = a.lease {
        s.lease_secs = l.as_secs_f64();
    }
    if let Some(d) = a.shutdown_deadline {
        s.shutdown_deadline_secs = d.as_secs_f64();
    }
    if let Some(r) = a.retention {
        s.finished_retention_secs = r.as_secs_f64();
    }
    s.migrate |= a.migrate;
    s.scheduler &= !a.no_scheduler;
    super::model::embedded_default(&mut s).await?;
    let shutdown = runtime::shutdown_on_signals();
    let reports = runtime::run(s, registry, shutdown).await?;
    for r in reports {
        eprintln!(
            "stopped {}: handed back {}, unflushed {}",
            r.worker, r.handed_back, r.unflushed
        );
    }
    Ok(())
}
