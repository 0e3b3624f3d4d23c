//! The event log's records: job and document events in one capped log per prefix (a Redis
//! stream, `<prefix>:events:log`, written and read by `crate::queue::events`).
//!
//! Every process appends (pools: `job.started`, `job.progress`, `job.completed`, `job.failed`,
//! `job.cancelled`; handlers: `document.*`); every API process tails it and relays each event over
//! SSE to its owner and to admins. The stream ids are the SSE `Last-Event-ID`s, the same in every
//! process, so a client that reconnects anywhere resumes where it was while the entry is still in
//! the stream (the replay buffer: the newest `maxlen` events, trimmed approximately).
use serde_json::Value;

/// The `job.progress` body every backend publishes on its live events channel (the contract
/// subscribers read, whichever backend sends it).
pub fn progress_body(queue: &str, job_id: &str, progress: u8, message: &str) -> String {
    serde_json::json!({
        "type": "job.progress",
        "queue": queue,
        "job_id": job_id,
        "progress": progress,
        "message": message,
    })
    .to_string()
}

/// Default replay buffer, events.
pub const DEFAULT_MAXLEN: u64 = 10_000;

/// One event as appended: its type, its owner (None: only admins see it), its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub owner: Option<String>,
    pub data: Value,
}

impl Event {
    /// An event whose body carries its `type` and (when known) `owner_id`.
    pub fn new(kind: &str, owner: Option<&str>, mut data: Value) -> Self {
        if let Value::Object(m) = &mut data {
            m.insert("type".into(), Value::String(kind.into()));
            if let Some(o) = owner {
                m.insert("owner_id".into(), Value::String(o.into()));
            }
        }
        Self {
            kind: kind.to_string(),
            owner: owner.map(str::to_string),
            data,
        }
    }

    /// An event published by a handler: `{"type": ..., "owner_id": ...}`.
    pub fn from_body(data: Value) -> Option<Self> {
        let kind = data.get("type")?.as_str()?.to_string();
        let owner = data
            .get("owner_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(Self { kind, owner, data })
    }
}

/// An event read back, with its stream id.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub id: StreamId,
    pub event: Event,
}

/// A stream entry id `ms-seq`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId(pub u64, pub u64);

impl std::str::FromStr for StreamId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an event id (expected <ms>-<seq>)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self(
            a.parse().map_err(|_| bad())?,
            b.parse().map_err(|_| bad())?,
        ))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}
