//! Operators' and producers' view of jobs: show one, cancel, list and replay or purge dead letters,
//! pause and resume a queue. Every change goes through an atomic script or a single command.
use super::{RedisQueue, Result, int, now_ms, scripts, text};
use crate::backend::model::*;
use chatter_jobs::{Job, Priority, Status, Timestamp};
use redis::Value;
use serde_json::Value as Json;
use std::collections::HashMap;

/// A job key as HGETALL found it.
pub(crate) enum RawHash {
    Missing,
    /// Not a hash (WRONGTYPE) or an unexpected reply: why.
    Unreadable(String),
    /// The fields as text, and the names of those whose name or value was not UTF-8.
    Fields(HashMap<String, String>, Vec<String>),
}

/// Read an HGETALL reply without failing on bytes that are not UTF-8 (a record written by hand,
/// a payload from a foreign producer): they are converted lossily and their fields named.
pub(crate) fn raw_hash(v: Value) -> RawHash {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Nil => return RawHash::Missing,
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut it = a.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        Value::ServerError(e) => return RawHash::Unreadable(e.to_string()),
        other => return RawHash::Unreadable(format!("unexpected reply {other:?}")),
    };
    if pairs.is_empty() {
        return RawHash::Missing;
    }
    let mut lossy = Vec::new();
    let mut h = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        let (k, k_ok) = lossy_text(k);
        let (v, v_ok) = lossy_text(v);
        if !(k_ok && v_ok) {
            lossy.push(k.clone());
        }
        h.insert(k, v);
    }
    RawHash::Fields(h, lossy)
}

fn lossy_text(v: Value) -> (String, bool) {
    match v {
        Value::BulkString(b) => match String::from_utf8(b) {
            Ok(s) => (s, true),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
        },
        other => (text(other), true),
    }
}

fn ts(h: &HashMap<String, String>, f: &str) -> Option<Timestamp> {
    h.get(f)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .map(Timestamp)
}

impl RedisQueue {
    pub async fn show(&self, id: &str) -> Result<Option<JobRecord>> {
        Ok(self.show_many(&[id.to_string()]).await?.pop().flatten())
    }

    /// Many records in one round trip, in the order of `ids` (None: no such job). A key that is
    /// not a hash, or fields that are not UTF-8, still give a record, marked (see [`raw_hash`]).
    pub async fn show_many(&self, ids: &[String]) -> Result<Vec<Option<JobRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys.job(id));
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(ids
            .iter()
            .zip(replies)
            .map(|(id, v)| self.record(id, raw_hash(v)))
            .collect())
    }

    /// Index entries (id, created ms) of one owner's jobs, created within `min..=max` ms,
    /// `offset` and `count` in the chosen order.
    pub async fn index_page(
        &self,
        owner: &str,
        (min, max): (u64, u64),
        offset: usize,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, u64)>> {
        let key = self.keys.owner_index(owner);
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(key);
        if newest_first {
            cmd.arg(max).arg(min).arg("BYSCORE").arg("REV");
        } else {
            cmd.arg(min).arg(max).arg("BYSCORE");
        }
        cmd.arg("LIMIT").arg(offset).arg(count).arg("WITHSCORES");
        let v: Vec<(String, f64)> = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(v.into_iter().map(|(id, s)| (id, s as u64)).collect())
    }

    /// How many of one owner's jobs were created within `min..=max` ms.
    pub async fn index_count(&self, owner: &str, (min, max): (u64, u64)) -> Result<u64> {
        let key = self.keys.owner_index(owner);
        Ok(redis::cmd("ZCOUNT")
            .arg(key)
            .arg(min)
            .arg(max)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Drop an owner's index entries whose record is gone (deleted at finish with no retention).
    pub async fn unindex(&self, owner: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: () = redis::cmd("ZREM")
            .arg(self.keys.owner_index(owner))
            .arg(ids)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Up to `max` job ids of every state, read from the state structures themselves (no index):
    /// running, ready (by priority), scheduled, retrying, then the newest dead and finished.
    pub async fn scan_ids(&self, max: usize) -> Result<Vec<String>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let last = max as i64 - 1;
        let mut pipe = redis::pipe();
        // A structure of the wrong type reads as empty (the next script or the sweep sets it
        // aside) rather than failing the whole listing.
        pipe.ignore_errors();
        pipe.cmd("ZRANGE").arg(k.leases()).arg(0).arg(last);
        for p in chatter_jobs::Priority::ALL {
            pipe.cmd("LRANGE").arg(k.ready(p)).arg(0).arg(last);
        }
        pipe.cmd("ZRANGE").arg(k.scheduled()).arg(0).arg(last);
        pipe.cmd("ZRANGE").arg(k.retry()).arg(0).arg(last);
        pipe.cmd("ZRANGE").arg(k.dead()).arg(0).arg(last).arg("REV");
        pipe.cmd("ZRANGE").arg(k.done()).arg(0).arg(last).arg("REV");
        let lists: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(lists
            .into_iter()
            .filter_map(|v| match v {
                Value::Array(a) => Some(a.into_iter().map(text)),
                _ => None,
            })
            .flatten()
            .filter(|id| seen.insert(id.clone()))
            .take(max)
            .collect())
    }

    fn record(&self, id: &str, raw: RawHash) -> Option<JobRecord> {
        let (h, mut lossy) = match raw {
            RawHash::Missing => return None,
            RawHash::Unreadable(why) => (
                HashMap::from([("error".to_string(), format!("job record unreadable: {why}"))]),
                Vec::new(),
            ),
            RawHash::Fields(h, lossy) => (h, lossy),
        };
        let raw = h.get("payload").cloned().unwrap_or_default();
        let (job, payload_error) = match Job::decode(raw.as_bytes()) {
            Ok(j) if !lossy.iter().any(|f| f == "payload") => (Some(j), None),
            Ok(_) => (None, Some("payload is not UTF-8".to_string())),
            Err(e) => (None, Some(e.to_string())),
        };
        let num = |f: &str| h.get(f).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let history: Json = h
            .get("history")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Json::Array(vec![]));
        let failures = history.as_array().map(|a| a.len()).unwrap_or(0) as u32;
        lossy.sort();
        let mut marks = Vec::new();
        if !lossy.is_empty() {
            marks.push(format!("[not UTF-8, shown lossily: {}]", lossy.join(", ")));
        }
        // A record the queue never wrote (a hand edit, a foreign producer) is shown as failed
        // with what was found; the next fetch or sweep dead-letters it with the same reason.
        let raw_status = h.get("status").map(String::as_str).unwrap_or("");
        let status = raw_status.parse::<Status>().unwrap_or_else(|_| {
            marks.push(format!("[status unreadable: {raw_status:?}]"));
            Status::Failed
        });
        let raw_priority = h.get("priority").map(String::as_str).unwrap_or("");
        let priority = raw_priority.parse::<Priority>().unwrap_or_else(|_| {
            marks.push(format!("[priority unreadable: {raw_priority:?}]"));
            Priority::Normal
        });
        let mut error_message = h.get("error").filter(|e| !e.is_empty()).cloned();
        if !marks.is_empty() {
            // Marked where every reader sees it: the API, the CLI and the dashboard.
            let mark = marks.join(" ");
            error_message = Some(match error_message {
                Some(e) => format!("{e} {mark}"),
                None => mark,
            });
        }
        Some(JobRecord {
            id: id.to_string(),
            queue: self.name().to_string(),
            name: job.as_ref().map(|j| j.name.clone()),
            function_name: job.as_ref().map(|j| j.function_name.clone()),
            priority,
            created_at: job.as_ref().map(|j| j.created_at),
            scheduled_at: job.as_ref().and_then(|j| j.scheduled_at),
            started_at: ts(&h, "started_at"),
            completed_at: ts(&h, "completed_at"),
            error_message,
            retry_count: failures,
            max_retries: (num("max_attempts") as u32).saturating_sub(1),
            attempt: num("attempt") as u32,
            fence: num("fence"),
            result: h
                .get("result")
                .map(|r| serde_json::from_str(r).unwrap_or(Json::String(r.clone()))),
            progress: num("progress").min(100) as u8,
            progress_message: h.get("progress_message").cloned(),
            worker: h.get("owner").cloned(),
            owner: h.get("user").cloned(),
            history,
            raw_payload: payload_error.as_ref().map(|_| raw.clone()),
            job,
            payload_error,
            status,
            lossy_fields: lossy,
        })
    }

    pub async fn cancel(&self, id: &str) -> Result<CancelResult> {
        let k = &self.keys;
        let r: String = scripts::CANCEL
            .key(k.job_prefix())
            .key(k.ready_prefix())
            .key(k.scheduled())
            .key(k.retry())
            .key(k.done())
            .key(k.owner_index_prefix())
            .key(k.dead())
            .arg(now_ms())
            .arg(id)
            .arg(k.cancel_channel())
            .arg(self.options.finished_retention.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match r.as_str() {
            "cancelled" => CancelResult::Cancelled,
            "cancelling" => CancelResult::Cancelling,
            "missing" => CancelResult::NotFound,
            other => {
                CancelResult::AlreadyFinished(other.trim_start_matches("finished:").to_string())
            }
        })
    }

    /// Replay one dead job (`Some(id)`) or the oldest `limit` dead jobs; returns how many.
    pub async fn replay(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        let k = &self.keys;
        Ok(scripts::REPLAY
            .key(k.dead())
            .key(k.job_prefix())
            .key(k.ready_prefix())
            .key(k.notify())
            .arg(id.unwrap_or(""))
            .arg(limit.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Delete one dead job (`Some(id)`) or the oldest `limit` dead jobs; returns how many.
    pub async fn purge_dead(&self, id: Option<&str>, limit: usize) -> Result<u64> {
        Ok(scripts::PURGE
            .key(self.keys.dead())
            .key(self.keys.job_prefix())
            .key(self.keys.owner_index_prefix())
            .arg(id.unwrap_or(""))
            .arg(limit.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Dead letters, oldest first.
    pub async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<JobRecord>> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.dead())
            .arg(offset)
            .arg(offset + limit.max(1) - 1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(self.show_many(&ids).await?.into_iter().flatten().collect())
    }

    pub async fn pause(&self) -> Result<()> {
        let _: () = redis::cmd("SET")
            .arg(self.keys.paused())
            .arg(now_ms())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Resume and wake an idle fetcher at once.
    pub async fn resume(&self) -> Result<()> {
        let _: Value = redis::pipe()
            .cmd("DEL")
            .arg(self.keys.paused())
            .cmd("RPUSH")
            .arg(self.keys.notify())
            .arg("1")
            .cmd("LTRIM")
            .arg(self.keys.notify())
            .arg(0)
            .arg(0)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    pub async fn is_paused(&self) -> Result<bool> {
        let n: Value = redis::cmd("EXISTS")
            .arg(self.keys.paused())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(int(&n) == 1)
    }

    /// Whether a key holds job `id` (of whatever type: a malformed record is still found).
    pub async fn exists(&self, id: &str) -> Result<bool> {
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.keys.job(id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Raw field of a job's record (tests and diagnostics).
    pub async fn field(&self, id: &str, field: &str) -> Result<Option<String>> {
        let v: Value = redis::cmd("HGET")
            .arg(self.keys.job(id))
            .arg(field)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(match v {
            Value::Nil => None,
            other => Some(text(other)),
        })
    }

    /// Jobs that finished (completed or cancelled) at a time (ms) in `range`.
    pub async fn finished_count(&self, (min, max): (u64, u64)) -> Result<u64> {
        Ok(redis::cmd("ZCOUNT")
            .arg(self.keys.done())
            .arg(min)
            .arg(max)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// This queue's registered workers and until when (ms) each counts as alive.
    pub async fn workers(&self) -> Result<Vec<(String, u64)>> {
        let live: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.workers())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(live.into_iter().map(|(w, t)| (w, t as u64)).collect())
    }
}
