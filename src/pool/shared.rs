//! State one pool's loops share: the claims this process holds, the concurrency permits, and the
//! single place where a handler's [`Outcome`] becomes a queue [`Finish`] (with metrics).
use super::PoolConfig;
use crate::metrics;
use crate::queue::claim::history_entry;
use crate::queue::{Claimed, Finish, FinishEntry, RedisQueue};
use crate::retry::{RetryPolicy, delay};
use chatter_jobs::{Job, JobContext, Outcome, ProgressUpdate, Registry};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// A claim as carried in an apalis task's data.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: String,
    pub fence: u64,
    pub attempt: u32,
    pub due_ms: u64,
}

#[derive(Debug)]
struct Held {
    cancel: CancellationToken,
    /// Tripped with `cancel` when a user cancelled the job (not on shutdown or a lost claim).
    user: CancellationToken,
    /// Holds a concurrency permit: claimed and not yet ended (buffered or running).
    active: bool,
    /// Given back at shutdown: whatever the handler says later is not recorded.
    handed_back: bool,
    /// Who and what, for the job's events (set once the payload decoded).
    meta: Option<Arc<JobMeta>>,
}

/// What a job's events say about it besides its state.
#[derive(Debug)]
pub struct JobMeta {
    pub owner: Option<String>,
    pub name: String,
    pub kind: String,
}

pub struct Shared {
    pub queue: RedisQueue,
    pub worker: String,
    pub config: PoolConfig,
    pub registry: Registry,
    pub permits: Arc<Semaphore>,
    /// Tripped when the pool stops fetching.
    pub stopping: CancellationToken,
    held: Mutex<HashMap<(String, u64), Held>>,
    /// Held claims with an owner (events to publish); 0 lets the finish path skip the lookups.
    owned: std::sync::atomic::AtomicUsize,
    /// Events to append, in the order they were published (one writer task per pool).
    events_tx: Mutex<Option<UnboundedSender<Vec<crate::events::Event>>>>,
    finish_tx: UnboundedSender<FinishEntry>,
    progress_tx: UnboundedSender<ProgressUpdate>,
    rng: Mutex<StdRng>,
}

impl Shared {
    pub fn new(
        queue: RedisQueue,
        worker: String,
        config: PoolConfig,
        registry: Registry,
        finish_tx: UnboundedSender<FinishEntry>,
        progress_tx: UnboundedSender<ProgressUpdate>,
    ) -> Self {
        let rng = Mutex::new(
            config
                .rng_seed
                .map(StdRng::seed_from_u64)
                .unwrap_or_else(StdRng::from_os_rng),
        );
        Self {
            rng,
            permits: Arc::new(Semaphore::new(config.concurrency)),
            queue,
            worker,
            config,
            registry,
            stopping: CancellationToken::new(),
            held: Mutex::new(HashMap::new()),
            owned: std::sync::atomic::AtomicUsize::new(0),
            events_tx: Mutex::new(None),
            finish_tx,
            progress_tx,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Held>> {
        // A poisoned map only means another thread panicked mid-update; the data is still usable.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a freshly claimed job (its permit is already taken).
    pub fn hold(&self, c: &Claimed) {
        let held = Held {
            cancel: CancellationToken::new(),
            user: CancellationToken::new(),
            active: true,
            handed_back: false,
            meta: None,
        };
        self.held().insert((c.id.clone(), c.fence), held);
    }

    /// Remember a decoded claim's owner and names for its events; returns them.
    pub fn describe(&self, id: &str, fence: u64, job: &Job) -> Arc<JobMeta> {
        let meta = Arc::new(JobMeta {
            owner: job.created_by_user_id.clone(),
            name: job.name.clone(),
            kind: job.function_name.clone(),
        });
        if let Some(h) = self.held().get_mut(&(id.to_string(), fence))
            && h.meta.replace(meta.clone()).is_none()
        {
            self.owned
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        meta
    }

    /// Whether any held claim has an owner (and so events).
    pub fn has_owned(&self) -> bool {
        self.owned.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    pub fn meta(&self, id: &str, fence: u64) -> Option<Arc<JobMeta>> {
        self.held()
            .get(&(id.to_string(), fence))
            .and_then(|h| h.meta.clone())
    }

    /// Append job events to the event log in the background (best effort: a lost event must
    /// never hold up or fail a job). Only jobs with an owner have events: SSE delivers them to
    /// that user (and admins); ownerless work (cron ticks, internal follow-ups) costs nothing.
    pub fn publish(&self, mut events: Vec<crate::events::Event>) {
        events.retain(|e| e.owner.is_some());
        if events.is_empty() {
            return;
        }
        let len = self.queue.options().event_log_len;
        if len == 0 {
            return;
        }
        let mut tx = self.events_tx.lock().unwrap_or_else(|e| e.into_inner());
        let tx = tx.get_or_insert_with(|| {
            // One writer: events reach the log in the order the pool's loops published them.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<crate::events::Event>>();
            let mut conn = self.queue.connection();
            let key = self.queue.keys().event_log();
            tokio::spawn(async move {
                while let Some(mut batch) = rx.recv().await {
                    while let Ok(more) = rx.try_recv() {
                        batch.extend(more);
                    }
                    if let Err(e) = crate::queue::events::append(&mut conn, &key, len, &batch).await
                    {
                        tracing::debug!(error = %e, n = batch.len(), "events not appended");
                    }
                }
            });
            tx
        });
        let _ = tx.send(events);
    }

    pub fn context_for(&self, claim: &Claim) -> JobContext {
        let (cancel, user) = self
            .held()
            .get(&(claim.id.clone(), claim.fence))
            .map(|h| (h.cancel.clone(), h.user.clone()))
            .unwrap_or_default();
        JobContext::new(
            claim.id.clone(),
            claim.attempt,
            claim.fence,
            cancel,
            Some(self.progress_tx.clone()),
        )
        .with_user_cancel(user)
    }

    /// (id, fence) of every claim whose lease must be kept alive.
    pub fn held_claims(&self) -> Vec<(String, u64)> {
        self.held().keys().cloned().collect()
    }

    pub fn held_count(&self) -> usize {
        self.held().len()
    }

    /// Trip the cancellation token of every claim of these job ids.
    pub fn cancel_ids(&self, ids: &[String]) {
        for ((id, _), h) in self.held().iter() {
            if ids.contains(id) {
                h.user.cancel();
                h.cancel.cancel();
            }
        }
    }

    /// The claim moved on (rescued elsewhere): stop its handler.
    pub fn lost(&self, claims: &[(String, u64)]) {
        let held = self.held();
        for c in claims {
            if let Some(h) = held.get(c) {
                h.cancel.cancel();
            }
        }
    }

    /// Forget claims whose finish was written (or refused).
    pub fn release(&self, entries: &[FinishEntry]) {
        let mut held = self.held();
        for e in entries {
            if let Some(h) = held.remove(&(e.id.clone(), e.fence))
                && h.meta.is_some()
            {
                self.owned
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// End of an active claim: give back its permit. False when it was handed back already.
    fn deactivate(&self, id: &str, fence: u64) -> bool {
        let mut held = self.held();
        let Some(h) = held.get_mut(&(id.to_string(), fence)) else {
            return false;
        };
        let was_active = std::mem::replace(&mut h.active, false);
        let handed_back = h.handed_back;
        drop(held);
        if was_active {
            self.permits.add_permits(1);
        }
        !handed_back
    }

    /// The one place a handler's outcome is mapped to the queue and to metrics.
    pub fn complete(&self, claim: &Claim, job: &Job, outcome: Outcome, ran: Duration) {
        if !self.deactivate(&claim.id, claim.fence) {
            return;
        }
        let max_attempts = job.max_attempts();
        let (finish, label) = match outcome {
            Outcome::Completed(v) => (
                Finish::Completed {
                    result: (!v.is_null()).then(|| v.to_string()),
                },
                "completed",
            ),
            Outcome::Retry(error) if claim.attempt < max_attempts => {
                let policy = self
                    .config
                    .retry
                    .get(&job.function_name)
                    .cloned()
                    .unwrap_or_else(|| RetryPolicy::with_base(job.retry_delay));
                let wait = delay(
                    claim.attempt,
                    &policy,
                    &mut *self.rng.lock().unwrap_or_else(|e| e.into_inner()),
                );
                let now = crate::queue::now_ms();
                let history = history_entry(claim.attempt, &error, &self.worker, now);
                let run_at_ms = now + wait.as_millis() as u64;
                (
                    Finish::Retry {
                        error,
                        history,
                        run_at_ms,
                    },
                    "retried",
                )
            }
            Outcome::Retry(error) => {
                let history =
                    history_entry(claim.attempt, &error, &self.worker, crate::queue::now_ms());
                let error = format!("{error} (gave up after {} attempts)", claim.attempt);
                (Finish::Dead { error, history }, "dead")
            }
            Outcome::Fail(error) => {
                let history =
                    history_entry(claim.attempt, &error, &self.worker, crate::queue::now_ms());
                (Finish::Dead { error, history }, "failed")
            }
            Outcome::Snooze(d) => (
                Finish::Snooze {
                    run_at_ms: crate::queue::now_ms() + d.as_millis() as u64,
                },
                "snoozed",
            ),
            Outcome::Cancelled => (
                Finish::Cancelled {
                    reason: "cancelled".into(),
                },
                "cancelled",
            ),
        };
        metrics::record_finished(self.queue.name(), &job.function_name, label, ran);
        self.send(FinishEntry {
            id: claim.id.clone(),
            fence: claim.fence,
            finish,
        });
    }

    /// A claimed payload that does not decode: dead-letter it with the reason; the worker goes on.
    pub fn undecodable(&self, c: &Claimed, error: String) {
        self.deactivate(&c.id, c.fence);
        metrics::record_undecodable(self.queue.name(), 1);
        let history = history_entry(c.attempt, &error, &self.worker, crate::queue::now_ms());
        self.send(FinishEntry {
            id: c.id.clone(),
            fence: c.fence,
            finish: Finish::Dead { error, history },
        });
    }

    /// Hand back every claim whose handler has not ended (shutdown). Returns how many.
    pub fn hand_back_active(&self) -> usize {
        let mut back = Vec::new();
        for ((id, fence), h) in self.held().iter_mut() {
            if h.active && !h.handed_back {
                h.handed_back = true;
                h.cancel.cancel();
                back.push(FinishEntry {
                    id: id.clone(),
                    fence: *fence,
                    finish: Finish::Requeue,
                });
            }
        }
        let n = back.len();
        for e in back {
            self.send(e);
        }
        n
    }

    fn send(&self, e: FinishEntry) {
        // The finisher lives as long as the pool; if it is gone the lease expires and the rescuer
        // hands the job back: delivery stays at-least-once.
        let _ = self.finish_tx.send(e);
    }
}
