//! The consistency sweep: every so often, every job record of every queue is checked against the
//! structure its status says it is in. A job left in none (by a hand edit, a restore, a script of
//! an older version that failed halfway) is put back; a malformed record is dead-lettered with its
//! reason; a key of the wrong type is set aside. Every step is atomic, so passes may overlap, but
//! a pass reads every job key: a per-queue gate (`Gate::Sweep`, claimed through the backend's
//! [`Gates`]) lets one process sweep a queue per interval, and the first pass waits a jittered
//! interval (a deploy's processes do not sweep at once).
use crate::backend::{Gate, Gates, Queue, Result, SweepReport};
use crate::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Time between passes (zero: no sweep).
    pub interval: Duration,
    /// The lease a running job found without one is given (the pools' longest lease, so a live
    /// holder keeps its job).
    pub lease: Duration,
}

/// Five minutes: a stranded job is found within that, and the key scan stays a small load.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            lease: Duration::from_secs(30),
        }
    }
}

pub struct Sweep {
    pub config: SweepConfig,
    pub queues: Vec<Arc<dyn Queue>>,
    /// Where the once-per-interval claims are taken (`run` only; `run_once` sweeps regardless).
    pub gates: Arc<dyn Gates>,
}

impl Sweep {
    /// One pass over every queue. A queue whose pass fails is logged and the others go on; the
    /// first error is returned after them.
    pub async fn run_once(&self) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        let mut first_error = None;
        for q in &self.queues {
            match q.sweep(self.config.lease).await {
                Ok(r) => add(&mut total, q.name(), r),
                Err(e) => {
                    tracing::warn!(queue = q.name(), error = %e, "consistency sweep failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        if self.config.interval.is_zero() {
            return;
        }
        let mut wait = self.config.interval.mul_f64(0.5 + rand::random::<f64>());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            wait = self.config.interval;
            for q in &self.queues {
                if shutdown.is_cancelled() {
                    return;
                }
                match claim(&*self.gates, q.name(), self.config.interval).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(queue = q.name(), error = %e, "sweep claim failed");
                        continue;
                    }
                }
                match q.sweep(self.config.lease).await {
                    Ok(r) => add(&mut SweepReport::default(), q.name(), r),
                    Err(e) => {
                        tracing::warn!(queue = q.name(), error = %e, "consistency sweep failed; the next pass retries")
                    }
                }
            }
        }
    }
}

/// This process sweeps `queue` this interval when it wins the queue's gate (kept 90 % of the
/// interval, so the next one is free however the processes' timers drift).
async fn claim(gates: &dyn Gates, queue: &str, interval: Duration) -> Result<bool> {
    let ttl = (interval * 9 / 10).max(Duration::from_millis(1));
    gates.try_claim(Gate::Sweep { queue }, "1", ttl).await
}

fn add(total: &mut SweepReport, queue: &str, r: SweepReport) {
    if r.repaired + r.dead_lettered > 0 || r.set_aside > 0 {
        tracing::warn!(
            queue,
            checked = r.checked,
            repaired = r.repaired,
            dead_lettered = r.dead_lettered,
            set_aside = r.set_aside,
            "consistency sweep repaired the queue"
        );
    }
    if r.dead_lettered > 0 {
        metrics::record_undecodable(queue, r.dead_lettered);
    }
    total.checked += r.checked;
    total.repaired += r.repaired;
    total.dead_lettered += r.dead_lettered;
    total.set_aside += r.set_aside;
    total.ready_check_skipped |= r.ready_check_skipped;
}
