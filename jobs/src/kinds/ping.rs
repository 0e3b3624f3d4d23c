//! `ping`: does nothing and completes at once. The no-op job of the queue benchmarks.
use crate::{Job, JobContext, JobError};
use serde_json::Value;

pub const KIND: &str = "ping";

pub async fn run(_job: Job, _ctx: JobContext) -> Result<Value, JobError> {
    Ok(Value::Null)
}
