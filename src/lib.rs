//! chatter-worker: a durable Redis job runtime for the Chatter AI platform, under apalis.
//!
//! `lib.rs` only wires modules. With default features off and `client` on, producers get the job
//! envelope (re-exported from `chatter-jobs`) and [`queue::RedisQueue`] to enqueue and inspect
//! jobs; the `worker` feature adds the runtime: pools, rescuer, metrics, HTTP, CLI and benchmarks.
#![forbid(unsafe_code)]

pub use chatter_jobs as jobs;

#[cfg(feature = "worker")]
pub mod api;
pub mod backend;
#[cfg(feature = "worker")]
pub mod bench;
#[cfg(feature = "worker")]
pub mod cli;
#[cfg(feature = "worker")]
pub mod config;
#[cfg(feature = "worker")]
pub mod cron;
pub mod events;
#[cfg(feature = "worker")]
pub mod handlers;
#[cfg(feature = "worker")]
pub mod http;
#[cfg(feature = "worker")]
pub mod ingest;
#[cfg(feature = "worker")]
pub mod metrics;
pub mod outbox;
#[cfg(feature = "worker")]
pub mod pool;
pub mod queue;
#[cfg(feature = "worker")]
pub mod ratelimit;
#[cfg(feature = "worker")]
pub mod reconcile;
#[cfg(feature = "worker")]
pub mod rescuer;
#[cfg(feature = "worker")]
pub mod retention;
#[cfg(feature = "worker")]
pub mod retry;
#[cfg(feature = "worker")]
pub mod runtime;
#[cfg(feature = "worker")]
pub mod sqlite;
pub mod submit;
#[cfg(feature = "worker")]
pub mod sweep;
