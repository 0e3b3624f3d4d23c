//! The tick loop every `run` process runs. Each pass looks at the ticks since a schedule's last
//! fire (kept by the backend, shared by all processes); a tick is enqueued only by the process
//! that wins its gate, and the tick is also the job's idempotency key. The gate holds a claim
//! (briefly) then `done`: the last fire only moves past a tick that is done, so a process dying
//! between its claim and its enqueue leaves the tick to another. It receives checked schedules
//! and a backend; it hands on jobs to the schedules' queues and a [`PassReport`] per pass.
use super::catch_up;
use super::schedule::Schedule;
use crate::backend::{Backend, CronGate, Gate, QueueOptions, Result};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Scheduler {
    pub schedules: Vec<Schedule>,
    /// Opens the queues ticks are enqueued on and serves the gates, last fires and clock.
    pub backend: Arc<dyn Backend>,
    pub options: QueueOptions,
    /// How often ticks are looked for.
    pub poll: Duration,
    /// This process's mark on the ticks it claims.
    pub token: String,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// (schedule, tick ms) this process enqueued.
    pub fired: Vec<(String, i64)>,
}

impl Scheduler {
    /// Look at every enabled schedule once, at time `now`. A schedule whose backend calls fail
    /// is logged and left to the next pass; the others go on.
    pub async fn pass(&mut self, now: DateTime<Utc>) -> Result<PassReport> {
        let gate = self.backend.cron_gate();
        let mut report = PassReport::default();
        let mut first_error = None;
        for s in self.schedules.iter().filter(|s| s.spec.enabled) {
            if let Err(e) = self.schedule_pass(&*gate, s, now, &mut report).await {
                tracing::warn!(schedule = %s.spec.name, error = %e, "schedule pass failed; next pass retries");
                first_error.get_or_insert(e);
            }
            if let Some(next) = s.next_after(now) {
                metrics::gauge!("chatter_cron_next_fire_timestamp_seconds", "schedule" => s.spec.name.clone())
                    .set(next.timestamp() as f64);
            }
        }
        match first_error {
            Some(e) if report.fired.is_empty() => Err(e),
            _ => Ok(report),
        }
    }

    async fn schedule_pass(
        &self,
        gate: &dyn CronGate,
        s: &Schedule,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<()> {
        let name = &s.spec.name;
        let last = gate.last_fire(name).await?;
        let Some(last) = last.and_then(|ms| Utc.timestamp_millis_opt(ms).single()) else {
            // First sight of the schedule: it starts now (nothing before it is owed).
            gate.advance_last_fire(name, now.timestamp_millis()).await?;
            return Ok(());
        };
        let plan = catch_up::plan(s, last, now);
        // The newest tick known to be settled: enqueued (here or elsewhere) or dropped.
        let mut settled = plan.dropped;
        let q = self.backend.queue(&s.queue, self.options.clone());
        let holder = format!("claimed:{}", self.token);
        let claim = Duration::from_secs(super::CLAIM_SECS);
        let result = async {
            for tick in plan.fire {
                let ms = tick.timestamp_millis();
                let tick_gate = Gate::CronTick {
                    schedule: name,
                    tick_ms: ms,
                };
                // A short claim first: if this process dies before enqueueing, the claim
                // expires and another process enqueues the tick (the job's idempotency key
                // keeps it to one job either way).
                if !gate.try_claim(tick_gate, &holder, claim).await? {
                    if gate.is_done(name, ms).await? {
                        settled = Some(tick);
                        continue;
                    }
                    // Another process is enqueueing it: look again next pass.
                    break;
                }
                let created = match q.enqueue(&s.job(tick).build()).await {
                    Ok(r) => r.created,
                    Err(e) => {
                        // Give the tick back at once rather than after the claim expires.
                        let _ = gate.release(tick_gate, &holder).await;
                        return Err(e);
                    }
                };
                let keep = Duration::from_secs(s.spec.grace_secs + 3600);
                gate.mark_done(name, ms, keep).await?;
                settled = Some(tick);
                if created {
                    let lag = (now - tick).num_milliseconds().max(0) as f64 / 1000.0;
                    metrics::counter!("chatter_cron_fires_total", "schedule" => name.clone())
                        .increment(1);
                    metrics::histogram!("chatter_cron_lag_seconds", "schedule" => name.clone())
                        .record(lag);
                    report.fired.push((name.clone(), ms));
                }
            }
            Ok(())
        }
        .await;
        // What was settled counts even when a later tick failed.
        if let Some(t) = settled {
            gate.advance_last_fire(name, t.timestamp_millis()).await?;
        }
        result
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let gate = self.backend.cron_gate();
        let mut retry = crate::backend::backoff();
        loop {
            // The backend's clock, shared by every process: a machine with a skewed clock
            // neither fires early nor marks ticks missed.
            let now = match gate.now().await {
                Ok(t) => DateTime::<Utc>::from(t),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot read the backend's clock; retrying");
                    Utc::now()
                }
            };
            let wait = match self.pass(now).await {
                Ok(_) => {
                    retry = crate::backend::backoff();
                    self.poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying");
                    retry.next().unwrap_or(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
