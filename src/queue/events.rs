//! The event log in Redis: one capped stream, `<prefix>:events:log`, of `crate::events` records.
//!
//! Appends go in one pipelined round trip with an approximate `MAXLEN` trim; reads return the
//! entries after an id (`XRANGE`, or a blocking `XREAD` on a connection of its own), parsed back
//! into [`Logged`] events whose stream ids are the SSE `Last-Event-ID`s. `seam::RedisEventLog`
//! serves them behind `crate::backend::EventLog`.
use crate::events::{Event, Logged, StreamId};
use redis::aio::ConnectionManager;
use serde_json::Value;

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
