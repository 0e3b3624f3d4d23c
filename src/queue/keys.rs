//! Every Redis key and channel name chatter-worker uses, in one place.
//!
//! Keys of one queue carry a `{queue}` hash tag so the whole queue lives in one Redis Cluster slot
//! and every script touches one slot. The prefix (default `cw`) lets tests and tenants share a
//! Redis without seeing each other.
use chatter_jobs::Priority;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    queue: String,
    base: String,
}

impl Keys {
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            queue: queue.to_string(),
            base: format!("{prefix}:{{{queue}}}"),
        }
    }
    pub fn queue(&self) -> &str {
        &self.queue
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// `<p>:{q}:ready:` — one LIST per priority: [`Keys::ready`].
    pub fn ready_prefix(&self) -> String {
        format!("{}:ready:", self.base)
    }
    pub fn ready(&self, p: Priority) -> String {
        format!("{}:ready:{}", self.base, p.as_str())
    }
    /// ZSET of delayed and snoozed jobs, score = run-at ms.
    pub fn scheduled(&self) -> String {
        format!("{}:scheduled", self.base)
    }
    /// ZSET of jobs waiting for a retry, score = run-at ms.
    pub fn retry(&self) -> String {
        format!("{}:retry", self.base)
    }
    /// ZSET of claimed jobs, score = lease deadline ms.
    pub fn leases(&self) -> String {
        format!("{}:leases", self.base)
    }
    /// `<p>:{q}:job:` — one HASH per job: [`Keys::job`].
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.base)
    }
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.base)
    }
    /// ZSET of dead letters, score = time of death ms.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.base)
    }
    /// ZSET of completed and cancelled jobs, score = finish time ms (trimmed).
    pub fn done(&self) -> String {
        format!("{}:done", self.base)
    }
    /// `<p>:{q}:owner:` — one ZSET per user of that user's jobs, score = created ms (the API's
    /// listing; trimmed with the records): [`Keys::owner_index`].
    pub fn owner_index_prefix(&self) -> String {
        format!("{}:owner:", self.base)
    }
    pub fn owner_index(&self, user: &str) -> String {
        format!("{}:owner:{user}", self.base)
    }
    pub fn idem_prefix(&self) -> String {
        format!("{}:idem:", self.base)
    }
    pub fn paused(&self) -> String {
        format!("{}:paused", self.base)
    }
    /// LIST holding at most one wake-up token that idle fetchers block on.
    pub fn notify(&self) -> String {
        format!("{}:notify", self.base)
    }
    /// ZSET of live workers, score = expiry ms (refreshed by heartbeats).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.base)
    }
    /// Pub/sub channel carrying the ids of running jobs to cancel.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.base)
    }
    /// Pub/sub channel of job events (progress) for every queue of the prefix.
    pub fn events_channel(&self) -> String {
        Self::events_channel_of(&self.prefix)
    }
    /// [`Keys::events_channel`] of a prefix.
    pub fn events_channel_of(prefix: &str) -> String {
        format!("{prefix}:events")
    }
    /// STREAM of job and document events of the prefix, capped (the SSE replay buffer; ids are
    /// the `Last-Event-ID`s).
    pub fn event_log(prefix: &str) -> String {
        format!("{prefix}:events:log")
    }
    /// SET of every queue name producers and workers have used (for `queues` and metrics).
    pub fn registry(prefix: &str) -> String {
        format!("{prefix}:queues")
    }
    /// STRING gate claiming this queue's consistency sweep for one interval.
    pub fn sweep_gate(&self) -> String {
        format!("{}:sweep", self.base)
    }
    /// STRING gate of one cron tick: `claimed:<process>` briefly, then `done`.
    pub fn cron_tick(prefix: &str, schedule: &str, tick_ms: i64) -> String {
        format!("{prefix}:cron:{schedule}:{tick_ms}")
    }
    /// STRING: a schedule's last fired (or passed) tick, ms.
    pub fn cron_last(prefix: &str, schedule: &str) -> String {
        format!("{prefix}:cron:{schedule}:last")
    }
    /// ZSET: a provider account's rate-limit log (`id:tokens` by grant time, ms).
    pub fn rate_log(prefix: &str, account: &str) -> String {
        format!("{prefix}:ratelimit:{{{account}}}:log")
    }
    /// STRING holding one dashboard session (JSON), with its TTL; `digest` is the hashed id.
    pub fn session(prefix: &str, digest: &str) -> String {
        format!("{prefix}:session:{digest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = Keys::new("cw", "embedding");
        assert_eq!(k.ready(Priority::High), "cw:{embedding}:ready:high");
        assert_eq!(k.job("01H"), "cw:{embedding}:job:01H");
        assert!(k.leases().starts_with("cw:{embedding}:"));
        assert_eq!(Keys::registry("cw"), "cw:queues");
    }
}
