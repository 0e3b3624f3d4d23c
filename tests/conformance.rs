//! The backend conformance suite (`tests/conformance/suite.rs`) on the Redis backend.
mod common;
#[path = "conformance/suite.rs"]
mod suite;

use chatter_worker::backend::Backend;
use std::sync::Arc;

fn backend_for(h: &common::Harness) -> Arc<dyn Backend> {
    h.backend()
}
