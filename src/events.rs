//! The event log: job and document events in one capped Redis stream, `<prefix>:events:log`.
//!
//! Every process appends (pools: `job.started`, `job.progress`, `job.completed`, `job.failed`,
//! `job.cancelled`; handlers: `document.*`); every API process tails it and relays each event over
//! SSE to its owner and to admins. The stream ids are the SSE `Last-Event-ID`s, the same in every
//! process, so a client that reconnects anywhere resumes where it was while the entry is still in
//! the stream (the replay buffer: the newest `maxlen` events, trimmed approximately).
use redis::aio::ConnectionManager;
use serde_json::Value;

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

/// Append events in one round trip, capping the stream at about `maxlen` entries.
pub async fn append(
    conn: &mut ConnectionManager,
    key: &str,
    maxlen: u64,
    events: &[Event],
) -> redis::RedisResult<()> {
    if events.is_empty() || maxlen == 0 {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for e in events {
        pipe.cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(maxlen)
            .arg("*")
            .arg("type")
            .arg(&e.kind)
            .arg("owner")
            .arg(e.owner.as_deref().unwrap_or(""))
            .arg("data")
            .arg(e.data.to_string())
            .ignore();
    }
    pipe.query_async::<()>(conn).await
}

type Entries = Vec<(String, Vec<(String, String)>)>;

fn parse(entries: Entries) -> Vec<Logged> {
    entries
        .into_iter()
        .filter_map(|(id, fields)| {
            let id: StreamId = id.parse().ok()?;
            let mut kind = String::new();
            let mut owner = None;
            let mut data = Value::Null;
            for (k, v) in fields {
                match k.as_str() {
                    "type" => kind = v,
                    "owner" if !v.is_empty() => owner = Some(v),
                    "data" => data = serde_json::from_str(&v).unwrap_or(Value::String(v)),
                    _ => {}
                }
            }
            Some(Logged {
                id,
                event: Event { kind, owner, data },
            })
        })
        .collect()
}

/// Entries after `after` (exclusive), oldest first, at most `count`.
pub async fn range_after(
    conn: &mut ConnectionManager,
    key: &str,
    after: StreamId,
    count: usize,
) -> redis::RedisResult<Vec<Logged>> {
    let entries: Entries = redis::cmd("XRANGE")
        .arg(key)
        .arg(format!("({after}"))
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    Ok(parse(entries))
}

/// Whether the log was trimmed past `id` (its oldest entry is newer): a reader resuming after
/// `id` may have missed events. Conservative: it may say so when the trim stopped exactly at the
/// entry after `id`, never the other way round.
pub async fn trimmed_after(
    conn: &mut ConnectionManager,
    key: &str,
    id: StreamId,
) -> redis::RedisResult<bool> {
    let entries: Entries = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse(entries).first().is_some_and(|first| first.id > id))
}

/// The newest entry's id (the point a fresh tail starts from); `0-0` for an empty stream.
pub async fn last_id(conn: &mut ConnectionManager, key: &str) -> redis::RedisResult<StreamId> {
    let entries: Entries = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse(entries).first().map(|l| l.id).unwrap_or_default())
}

/// Block up to `block_ms` for entries after `after` (on a connection of its own).
pub async fn read_after(
    conn: &mut ConnectionManager,
    key: &str,
    after: StreamId,
    block_ms: u64,
    count: usize,
) -> redis::RedisResult<Vec<Logged>> {
    let reply: Option<Vec<(String, Entries)>> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(key)
        .arg(after.to_string())
        .query_async(conn)
        .await?;
    Ok(reply
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(_, e)| parse(e))
        .collect())
}
