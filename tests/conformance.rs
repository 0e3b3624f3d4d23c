//! The backend conformance suite (`tests/conformance/suite.rs`) on the Redis backend.
mod common;
#[path = "conformance/redis_probes.rs"]
mod redis_probes;
#[path = "conformance/suite.rs"]
mod suite;

use redis_probes::{progress_events, retry_run_at};

use chatter_worker::backend::Backend;
use std::sync::Arc;

/// The backend the tests act through, and the one their pools run on: both Redis.
fn backends_for(h: &common::Harness) -> (Arc<dyn Backend>, Arc<dyn Backend>) {
    (h.backend(), h.backend())
}
