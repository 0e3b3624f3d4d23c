//! Every Prometheus metric chatter-worker exports, in one module.
//!
//! Counters and histograms are fed by pool events (`record_*`), never by job code; queue gauges
//! are read from Redis at scrape time by [`collect`]. `/metrics` renders the process's recorder.
use crate::backend::{self, Queue};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

pub const ENQUEUED: &str = "chatter_jobs_enqueued_total";
pub const FINISHED: &str = "chatter_jobs_finished_total";
pub const RESCUED: &str = "chatter_jobs_rescued_total";
pub const STALE_ACKS: &str = "chatter_stale_acks_total";
pub const ORPHANS: &str = "chatter_jobs_undecodable_total";
pub const DURATION: &str = "chatter_job_duration_seconds";
pub const WAIT: &str = "chatter_job_wait_seconds";
pub const QUEUE_JOBS: &str = "chatter_queue_jobs";
pub const OLDEST_READY: &str = "chatter_queue_oldest_ready_age_seconds";
pub const PAUSED: &str = "chatter_queue_paused";
pub const WORKERS: &str = "chatter_workers";
pub const REDIS_ERRORS: &str = "chatter_redis_errors_total";
pub const REDIS_UP: &str = "chatter_redis_up";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide recorder (once) and return its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WAIT.into()), &buckets))
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // A recorder may already be installed (embedding applications): then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// A metric's type, for its `# TYPE` and `describe_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric any module records (this one, the pools, cron, and the handlers in
/// `chatter-jobs`), with its help text. `/metrics` describes each one: `promtool check metrics`
/// refuses a series without HELP, and `tests/metrics_http.rs` checks that every metric name
/// recorded in the sources is listed here.
pub const CATALOGUE: &[(&str, Kind, &str)] = &[
    (ENQUEUED, Kind::Counter, "Jobs enqueued by this process"),
    (
        FINISHED,
        Kind::Counter,
        "Job runs ended, by outcome (completed, retried, failed, dead, cancelled, snoozed)",
    ),
    (
        RESCUED,
        Kind::Counter,
        "Jobs whose lease expired and were handed back or dead-lettered",
    ),
    (
        STALE_ACKS,
        Kind::Counter,
        "Finishes refused because the worker no longer held the job's fence",
    ),
    (
        ORPHANS,
        Kind::Counter,
        "Payloads or ready-list entries that did not decode, dead-lettered",
    ),
    (
        REDIS_ERRORS,
        Kind::Counter,
        "Redis calls that failed and were retried, by loop",
    ),
    (DURATION, Kind::Histogram, "Handler run time"),
    (
        WAIT,
        Kind::Histogram,
        "Time from a job becoming due to its start",
    ),
    (
        QUEUE_JOBS,
        Kind::Gauge,
        "Jobs per queue and state, read from Redis at scrape time",
    ),
    (OLDEST_READY, Kind::Gauge, "Age of the oldest ready job"),
    (PAUSED, Kind::Gauge, "1 when the queue is paused"),
    (WORKERS, Kind::Gauge, "Live workers (heartbeat not expired)"),
    (
        REDIS_UP,
        Kind::Gauge,
        "1 when the last scrape read the queue gauges from Redis",
    ),
    (
        "chatter_workflow_runs_total",
        Kind::Counter,
        "Workflow job runs by workflow and outcome (completed, failed, cancelled, retried, waiting, interrupted)",
    ),
    (
        "chatter_workflow_node_duration_seconds",
        Kind::Histogram,
        "Workflow node run time by node kind",
    ),
    (
        "chatter_workflow_tool_calls_total",
        Kind::Counter,
        "Workflow tool calls by tool and outcome",
    ),
    (
        "chatter_workflow_tool_duration_seconds",
        Kind::Histogram,
        "Workflow tool call time by tool",
    ),
    (
        "chatter_llm_request_duration_seconds",
        Kind::Histogram,
        "Chat provider request time by provider, model and outcome",
    ),
    (
        "chatter_llm_tokens_total",
        Kind::Counter,
        "Chat provider tokens by provider, model and kind (prompt, completion)",
    ),
    (
        "chatter_embedding_cache_requests_total",
        Kind::Counter,
        "Chunks looked up in the embedding cache by model and result (hit, miss)",
    ),
    (
        "chatter_embedding_requests_total",
        Kind::Counter,
        "Embedding provider requests by provider and outcome (ok, retryable, failed)",
    ),
    (
        "chatter_embedding_request_duration_seconds",
        Kind::Histogram,
        "Embedding provider request time by provider",
    ),
    (
        "chatter_embedding_inputs_total",
        Kind::Counter,
        "Texts embedded by the provider (cache misses sent), by provider",
    ),
    (
        "chatter_rate_limit_waits_total",
        Kind::Counter,
        "Provider calls that waited for the shared rate limit, by provider",
    ),
    (
        "chatter_rate_limit_wait_seconds",
        Kind::Histogram,
        "Time waited for the shared provider rate limit, by provider",
    ),
    (
        "chatter_cron_fires_total",
        Kind::Counter,
        "Cron ticks this process enqueued, by schedule",
    ),
    (
        "chatter_cron_lag_seconds",
        Kind::Histogram,
        "Time from a cron tick to its enqueue, by schedule",
    ),
    (
        "chatter_cron_next_fire_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the schedule's next tick",
    ),
];

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    for &(name, kind, help) in CATALOGUE {
        let seconds = name.ends_with("_seconds") && !name.ends_with("_timestamp_seconds");
        match (kind, seconds) {
            (Kind::Counter, _) => describe_counter!(name, help),
            (Kind::Gauge, true) => describe_gauge!(name, Unit::Seconds, help),
            (Kind::Gauge, false) => describe_gauge!(name, help),
            (Kind::Histogram, true) => describe_histogram!(name, Unit::Seconds, help),
            (Kind::Histogram, false) => describe_histogram!(name, help),
        }
    }
}

pub fn record_enqueued(queue: &str, kind: &str, n: u64) {
    counter!(ENQUEUED, "queue" => queue.to_string(), "kind" => kind.to_string()).increment(n);
}

pub fn record_started(queue: &str, wait: Duration) {
    histogram!(WAIT, "queue" => queue.to_string()).record(wait.as_secs_f64());
}

pub fn record_finished(queue: &str, kind: &str, outcome: &'static str, ran: Duration) {
    counter!(FINISHED, "queue" => queue.to_string(), "kind" => kind.to_string(), "outcome" => outcome)
        .increment(1);
    histogram!(DURATION, "queue" => queue.to_string(), "kind" => kind.to_string())
        .record(ran.as_secs_f64());
}

pub fn record_stale(queue: &str, n: u64) {
    counter!(STALE_ACKS, "queue" => queue.to_string()).increment(n);
}

pub fn record_rescued(queue: &str, n: u64) {
    counter!(RESCUED, "queue" => queue.to_string()).increment(n);
}

pub fn record_undecodable(queue: &str, n: u64) {
    counter!(ORPHANS, "queue" => queue.to_string()).increment(n);
}

pub fn record_redis_error(queue: &str, loop_name: &'static str) {
    counter!(REDIS_ERRORS, "queue" => queue.to_string(), "loop" => loop_name).increment(1);
}

pub fn record_redis_up(up: bool) {
    gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
}

/// Make sure every queue's counters exist from the start (a queue with no events still shows).
pub fn register_queue(queue: &str) {
    counter!(RESCUED, "queue" => queue.to_string()).increment(0);
    counter!(STALE_ACKS, "queue" => queue.to_string()).increment(0);
}

/// Read every queue's state from Redis into the gauges (scrape time).
pub async fn collect(queues: &[Arc<dyn Queue>]) -> backend::Result<()> {
    for q in queues {
        let s = q.stats().await?;
        let name = q.name().to_string();
        for (state, v) in [
            ("ready", s.ready),
            ("scheduled", s.scheduled),
            ("running", s.running),
            ("retrying", s.retrying),
            ("dead", s.dead),
            ("finished", s.finished),
        ] {
            gauge!(QUEUE_JOBS, "queue" => name.clone(), "state" => state).set(v as f64);
        }
        gauge!(OLDEST_READY, "queue" => name.clone()).set(s.oldest_ready_age_ms as f64 / 1000.0);
        gauge!(PAUSED, "queue" => name.clone()).set(if s.paused { 1.0 } else { 0.0 });
        gauge!(WORKERS, "queue" => name).set(s.workers as f64);
    }
    Ok(())
}
